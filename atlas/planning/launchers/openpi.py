"""openpi `scripts/train.py` (JAX) and `scripts/train_pytorch.py` (PyTorch), read as
Physical-Intelligence/openpi at 15a9616a does. Flags are tyro's (`--batch-size` = `--batch_size`).

Facts, with file:line in that tree:
- The first positional argument names a TrainConfig (src/openpi/training/config.py), which sets everything
  the flags do not: pi0_libero :653-677, pi0_libero_low_mem_finetune :678-698, pi0_fast_libero :699-720,
  pi0_fast_libero_low_mem_finetune :721-742, pi05_libero :743-763; defaults TrainConfig :466-535
  (batch_size 32 global :506, num_train_steps 30,000 :511, ema_decay 0.99 :490, fsdp_devices 1 :535,
  CosineDecaySchedule warmup 1,000 / peak 2.5e-5 / decay 30,000 to 2.5e-6 in training/optimizer.py:16-22).
- `batch_size` is global. JAX: one process for all local GPUs, and scripts/train.py:198-200 raises unless it
  divides by jax.device_count(). PyTorch: torchrun processes, each takes batch_size // world_size
  (scripts/train_pytorch.py:351-353, training/data_loader.py:318), so a remainder is silently dropped.
- openpi has no gradient accumulation; `--fsdp-devices N` shards the state over N devices (config.py:530-535).
- JAX preallocates XLA_PYTHON_CLIENT_MEM_FRACTION of the GPU (75 % by default; README.md:160-163 asks 0.9).
- LoRA configs freeze the LLM and turn EMA off (config.py:690-697); frozen params are bf16 (scripts/train.py:103-104).
- PyTorch training is full bfloat16 by default (config.py:486 pytorch_training_precision; README.md:305).
- Every block is rematerialised: JAX nn.remat nothing_saveable (models/gemma.py:359-363, models/siglip.py:127-131);
  PyTorch turns gradient checkpointing on when the model has it (train_pytorch.py:411-413).
- Checkpoints: every save_interval (1000), keeping only the latest and each keep_period (5000) multiple
  (config.py:513-518).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from atlas.planning.launchers.base import (
    FAIL,
    OK,
    WARN,
    Launcher,
    Reading,
    Rule,
    as_float,
    as_int,
    basename,
    register_launcher,
)
from atlas.planning.launchers.common import launcher_world

if TYPE_CHECKING:
    from atlas.planning.launch import LaunchCommand


@dataclass(frozen=True)
class TrainConfig:
    """The parts of an openpi TrainConfig the doctor reads."""

    model: str  # planning preset
    batch_size: int = 32
    steps: int = 30_000
    warmup: int = 1000
    peak_lr: float = 2.5e-5
    decay_steps: int = 30_000
    decay_lr: float = 2.5e-6
    ema: float | None = 0.99
    horizon: int = 50
    source: str = ""


CONFIGS = {
    "pi0_libero": TrainConfig("pi0", source="config.py:653-677"),
    "pi0_libero_low_mem_finetune": TrainConfig("pi0-lora", ema=None, source="config.py:678-698"),
    "pi0_fast_libero": TrainConfig("pi0-fast", horizon=10, source="config.py:699-720"),
    "pi0_fast_libero_low_mem_finetune": TrainConfig("pi0-fast-lora", ema=None, horizon=10, source="config.py:721-742"),
    "pi05_libero": TrainConfig("pi05", batch_size=256, warmup=10_000, peak_lr=5e-5, decay_steps=1_000_000,
                               decay_lr=5e-5, ema=0.999, horizon=10, source="config.py:743-763"),
}
SWITCHES = frozenset({"overwrite", "no_overwrite", "resume", "no_resume", "wandb_enabled", "no_wandb_enabled"})
KNOWN = {"exp_name", "batch_size", "num_train_steps", "fsdp_devices", "num_workers", "seed", "log_interval",
         "save_interval", "keep_period", "ema_decay", "lr_schedule.warmup_steps", "lr_schedule.peak_lr",
         "lr_schedule.decay_steps", "lr_schedule.decay_lr", "pytorch_training_precision", "pytorch_weight_path",
         "checkpoint_base_dir", "assets_base_dir", "project_name", "data.repo_id", "overwrite", "no_overwrite",
         "resume", "no_resume", "wandb_enabled", "no_wandb_enabled"}


class OpenPI(Launcher):
    """What both openpi trainers share; `jax` decides devices per process and the memory fraction."""

    jax = True
    accumulation = False
    switches = SWITCHES

    def read(self, command: LaunchCommand, gpus: int | None = None) -> Reading:
        a = command.args
        name = command.positional[0] if command.positional else ""
        base = CONFIGS.get(name)
        world, world_origin = self._world(command, gpus)
        src = f"openpi {base.source}" if base else "openpi TrainConfig default (config.py:466-535)"
        base = base or TrainConfig(model="")
        r = Reading({}, {}, world, world_origin,
                    batch_note="batch_size is global (openpi config.py:505-506): split over the devices")
        r.identifiers = {"config": name} if name else {}
        if base.model:
            r.model, r.model_origin = base.model, f"openpi config {name} ({base.source})"
        elif name:
            r.model_origin = f"openpi config {name}: not one the doctor knows, model not planned"

        def pick(flag: str, default, cast):
            return (cast(a[flag]), f"--{flag.replace('_', '-')}") if flag in a and cast(a[flag]) is not None \
                else (default, f"{name or 'TrainConfig'} ({src})")

        batch, batch_origin = pick("batch_size", base.batch_size, as_int)
        per_device = batch // world
        r.set("global_batch_size", batch, batch_origin)
        r.set("micro_batch_size", per_device, f"{batch_origin} {batch} / {world} devices")
        r.set("gradient_accumulation_steps", 1, "openpi has no gradient accumulation")
        if batch % world:
            where = "scripts/train.py:198-200 raises" if self.jax else \
                f"train_pytorch.py:353 floors it to {per_device} per GPU = {per_device * world} in total"
            r.rules.append(Rule("batch_size / devices", f"{batch} / {world}", FAIL,
                                f"global batch_size {batch} does not divide by {world} devices: {where}",
                                f"全局 batch_size {batch} 不能被 {world} 张卡整除"))
        steps, steps_origin = pick("num_train_steps", base.steps, as_int)
        r.set("max_steps", steps, steps_origin)
        lr, lr_origin = pick("lr_schedule.peak_lr", base.peak_lr, as_float)
        warm, warm_origin = pick("lr_schedule.warmup_steps", base.warmup, as_int)
        decay_lr, _ = pick("lr_schedule.decay_lr", base.decay_lr, as_float)
        decay, _ = pick("lr_schedule.decay_steps", base.decay_steps, as_int)
        r.set("learning_rate", lr, lr_origin)
        r.set("warmup_steps", warm, warm_origin)
        r.values["effective_warmup_steps"] = min(warm, steps)
        flat = decay_lr >= lr
        r.set("lr_scheduler", "warmup_then_flat" if flat else "cosine",
              f"CosineDecaySchedule decay_lr {decay_lr:g}" + (" = peak: flat after warmup" if flat else f" over {decay}"))
        ema = as_float(a["ema_decay"]) if "ema_decay" in a else base.ema
        r.set("ema", ema, "--ema-decay" if "ema_decay" in a else f"{name or 'TrainConfig'} ({src})")
        r.set("num_workers", as_int(a.get("num_workers")) or 2, "--num-workers" if "num_workers" in a else
              "TrainConfig default 2 (config.py:509)")
        fsdp = as_int(a.get("fsdp_devices")) or 1
        r.set("strategy", "fsdp" if fsdp > 1 else "ddp", f"--fsdp-devices {fsdp}" if fsdp > 1 else
              "fsdp_devices 1 (config.py:535): every device holds the whole state")
        r.set("mixed_precision", "bf16", "openpi bf16 compute" if self.jax else "pytorch_training_precision bfloat16")
        r.unknown_flags = [f"--{k.replace('_', '-')}" for k in a if k not in KNOWN]
        self._memory_rules(r, command, fsdp)
        r.set("gradient_checkpointing", True, "gemma.py:359-363 nn.remat" if self.jax else "train_pytorch.py:411-413")
        r.set("processes", 1 if self.jax else world, "JAX: one process drives every local GPU" if self.jax else
              "torchrun processes")
        keep = as_int(a.get("keep_period")) or 5000
        r.rules.append(Rule("checkpoints_total_limit", f"latest + every {keep}", OK,
                            f"openpi keeps the latest checkpoint and each keep_period multiple, deleting the rest "
                            f"(config.py:513-518): about {steps // keep + 1} kept over {steps} steps"))
        r.planning = ["data.num_cameras=3", "data.image_size=224", f"model.action_horizon={base.horizon}",
                      "data.state_dim=8", "data.action_dim=7", "training.mixed_precision=bf16",
                      f"training.ema.enabled={'true' if ema else 'false'}",
                      "memory_optimization.gradient_checkpointing=true"]
        if self.jax:
            r.planning.append(f"memory_optimization.max_memory_usage={r.values['memory_fraction']}")
        return r

    def _world(self, command: LaunchCommand, gpus: int | None) -> tuple[int, str]:
        return launcher_world(command, gpus)

    def _memory_rules(self, r: Reading, command: LaunchCommand, fsdp: int) -> None:
        if not self.jax:
            r.rules.append(Rule("precision", "bfloat16", OK,
                                "train_pytorch.py trains in full bfloat16 by default (config.py:486, README.md:305): "
                                "weights, gradients and AdamW state in bf16, about half the planner's fp32-master "
                                "figure for the trainable state"))
            return
        value = command.env.get("XLA_PYTHON_CLIENT_MEM_FRACTION")
        fraction = as_float(value) if value is not None else None
        r.values["memory_fraction"] = fraction or 0.75
        if fraction is None:
            r.rules.append(Rule("XLA_PYTHON_CLIENT_MEM_FRACTION", "unset (0.75)", WARN,
                                "JAX preallocates 75 % of each GPU; openpi's README.md:160-163 runs training with "
                                "XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 to use up to 90 %",
                                "JAX 默认只预分配 75% 显存；openpi README 建议 XLA_PYTHON_CLIENT_MEM_FRACTION=0.9",
                                recipe="0.9"))
        else:
            r.rules.append(Rule("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{fraction:g}", OK,
                                f"JAX may use {fraction:.0%} of each GPU (README.md:160-163)", recipe="0.9"))

    def batch_flags(self, micro: int, accumulation: int, world: int) -> dict[str, str]:
        return {"batch_size": str(micro * world)}


@register_launcher
class OpenPIPyTorch(OpenPI):
    key = "openpi-pytorch"
    label = "openpi scripts/train_pytorch.py"
    jax = False

    def recognises(self, script: str, tokens: list[str]) -> bool:
        return basename(script) == "train_pytorch.py"


@register_launcher
class OpenPIJax(OpenPI):
    key = "openpi-jax"
    label = "openpi scripts/train.py"

    def recognises(self, script: str, tokens: list[str]) -> bool:
        positional = [t for t in tokens if not t.startswith("-")][:1]
        flags = {t.lstrip("-").split("=", 1)[0].replace("-", "_") for t in tokens if t.startswith("--")}
        return basename(script) == "train.py" and (bool(positional and positional[0] in CONFIGS) or "exp_name" in flags
                                                   and script.endswith("scripts/train.py"))

    def _world(self, command: LaunchCommand, gpus: int | None) -> tuple[int, str]:
        devices = command.visible_devices
        if devices:
            return len(devices), "JAX: one process over every visible GPU (CUDA_VISIBLE_DEVICES)"
        if gpus:
            return gpus, "JAX: one process over every visible GPU (--gpus)"
        return 1, "JAX: one process over every visible GPU (assumed 1: give --gpus)"
