"""OpenVLA-OFT `vla-scripts/finetune.py` (draccus flags, `--use_proprio True` style booleans), read as
moojink/openvla-oft at 213c5ff8 does.

Facts, with file:line of vla-scripts/finetune.py in that tree:
- `--batch_size` is per device (:88, default 8; total = batch_size x GPUs), `--grad_accumulation_steps` (:92, 1),
  `--learning_rate` (:89, 5e-4), `--lr_warmup_steps` (:90, 0; linear from 10 % to 100 %),
  `--num_steps_before_decay` (:91, 100,000: MultiStepLR gamma 0.1 there, :941-945), `--max_steps` (:93, 200,000),
  `--image_aug` (:102, True), `--use_lora` (:106, True), `--lora_rank` (:107, 32; alpha min(rank, 16), all-linear,
  :847-851), `--num_images_in_input` (:84, 1), `--use_proprio` (:85, False).
- With `--lr_warmup_steps` > 0 the loop writes original_lr x (0.1 + 0.9 progress) into the optimizer every step
  (:1078-1082), after warmup the full LR, so MultiStepLR's 10x decay never lasts past one step.
- The model is loaded in bfloat16 (:837); LIBERO.md:96 publishes ~62 GB at batch 8 per GPU, ~25 GB at batch 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atlas.planning.launchers.base import (
    WARN,
    Launcher,
    Reading,
    Rule,
    as_bool,
    as_float,
    as_int,
    basename,
    register_launcher,
)
from atlas.planning.launchers.common import launcher_world

if TYPE_CHECKING:
    from atlas.planning.launch import LaunchCommand

DEFAULTS = {"batch_size": 8, "grad_accumulation_steps": 1, "learning_rate": 5e-4, "lr_warmup_steps": 0,
            "num_steps_before_decay": 100_000, "max_steps": 200_000, "image_aug": True, "use_lora": True,
            "lora_rank": 32, "num_images_in_input": 1, "use_proprio": False}
KNOWN = set(DEFAULTS) | {
    "vla_path", "data_root_dir", "dataset_name", "run_root_dir", "shuffle_buffer_size", "use_l1_regression",
    "use_diffusion", "num_diffusion_steps_train", "use_film", "use_val_set", "val_freq", "val_time_limit",
    "save_freq", "save_latest_checkpoint_only", "resume", "resume_step", "diffusion_sample_freq", "lora_dropout",
    "merge_lora_during_training", "wandb_entity", "wandb_project", "run_id_note", "wandb_log_freq"}
OFT_ONLY = {"num_images_in_input", "use_proprio", "use_l1_regression", "use_diffusion", "use_film",
            "num_steps_before_decay"}


@register_launcher
class OpenVLAOFT(Launcher):
    key = "openvla-oft"
    label = "OpenVLA-OFT finetune.py"

    def recognises(self, script: str, tokens: list[str]) -> bool:
        flags = {t.lstrip("-").split("=", 1)[0].replace("-", "_") for t in tokens if t.startswith("--")}
        return basename(script) == "finetune.py" and ("vla-scripts/" in script or bool(flags & OFT_ONLY))

    def read(self, command: LaunchCommand, gpus: int | None = None) -> Reading:
        a = command.args
        world, world_origin = launcher_world(command, gpus)
        r = Reading({}, {}, world, world_origin, batch_note="--batch_size is per device (finetune.py:88)")

        def get(flag: str, cast):
            value = cast(a[flag]) if flag in a else None
            return (value, f"--{flag}") if value is not None else (DEFAULTS[flag], f"finetune.py default {DEFAULTS[flag]}")

        r.set("micro_batch_size", *get("batch_size", as_int))
        r.set("gradient_accumulation_steps", *get("grad_accumulation_steps", as_int))
        r.set("learning_rate", *get("learning_rate", as_float))
        r.set("warmup_steps", *get("lr_warmup_steps", as_int))
        r.set("max_steps", *get("max_steps", as_int))
        r.set("image_aug", *get("image_aug", as_bool))
        decay_at, _ = get("num_steps_before_decay", as_int)
        lora, lora_origin = get("use_lora", as_bool)
        rank, _ = get("lora_rank", as_int)
        images, _ = get("num_images_in_input", as_int)
        r.set("lr_scheduler", f"multistep x0.1 at {decay_at}", "finetune.py:941-945 MultiStepLR")
        r.set("lora_rank", rank if lora else None, lora_origin)
        r.set("mixed_precision", "bf16", "finetune.py:837 loads the VLA in bfloat16")
        r.set("strategy", "ddp", "finetune.py wraps the VLA in DDP")
        r.set("num_workers", 0, "finetune.py: RLDS loader, num_workers=0 (parallel reads inside tf.data)")
        r.values["effective_warmup_steps"] = r.values["warmup_steps"]
        vla = a.get("vla_path", "openvla/openvla-7b")
        r.identifiers = {"vla_path": str(vla), "dataset_name": str(a.get("dataset_name", "")),
                         "use_lora": "true" if lora else "false"}
        if str(vla).rstrip("/").endswith("openvla-7b"):
            r.model = "openvla-7b-lora" if lora else "openvla-7b"
            r.model_origin = f"--vla_path {vla}" + (f", LoRA rank {rank} (finetune.py:847-851)" if lora else ", full")
        else:
            r.model_origin = f"--vla_path {vla}: no planning shape for it"
        self._schedule_rules(r, decay_at)
        r.unknown_flags = [f"--{k}" for k in a if k not in KNOWN]
        r.planning = [f"data.num_cameras={images}", "data.image_size=224", "model.action_horizon=8",
                      "data.state_dim=8", "data.action_dim=7", "training.mixed_precision=bf16"]
        return r

    @staticmethod
    def _schedule_rules(r: Reading, decay_at: int) -> None:
        warm, steps = r.values["warmup_steps"], r.values["max_steps"]
        if warm > 0 and decay_at < steps:
            r.rules.append(Rule(
                "lr decay", f"warmup {warm} + decay at {decay_at}", WARN,
                f"with --lr_warmup_steps={warm} finetune.py:1078-1082 sets the LR to the full {r.values['learning_rate']:g} "
                f"every step after warmup, undoing MultiStepLR's x0.1 at step {decay_at} (:941-945): no decay happens",
                f"--lr_warmup_steps={warm} 时 finetune.py 每步都把学习率写回原值，第 {decay_at} 步的 10 倍衰减不会生效"))
        if decay_at >= steps:
            r.rules.append(Rule("lr decay", f"at {decay_at} >= max_steps {steps}", WARN,
                                f"--num_steps_before_decay={decay_at} is not before --max_steps={steps}: the LR never "
                                "decays (OFT's LIBERO recipe decays at 100k of 150k, LIBERO.md:111-112)"))

    def batch_flags(self, micro: int, accumulation: int, world: int) -> dict[str, str]:
        return {"batch_size": str(micro), "grad_accumulation_steps": str(accumulation)}
