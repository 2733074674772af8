"""One description of a training setup, whether it came from an Atlas YAML or a shell launch script.

Values use Atlas words (micro_batch_size, warmup_steps, ...). `origin` says where each came from: a flag,
a YAML key, or the launched script's default when the flag is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas.config.loader import load_config
from atlas.config.schema import AtlasConfig
from atlas.planning.launch import LaunchScript, parse_launch_script
from atlas.planning.run_plan import Hardware, resolve_run_plan

# RDT main.py flag → (Atlas word, type)
RDT_FLAGS: dict[str, tuple[str, type]] = {
    "train_batch_size": ("micro_batch_size", int),
    "gradient_accumulation_steps": ("gradient_accumulation_steps", int),
    "learning_rate": ("learning_rate", float),
    "lr_scheduler": ("lr_scheduler", str),
    "lr_warmup_steps": ("warmup_steps", int),
    "max_train_steps": ("max_steps", int),
    "checkpointing_period": ("checkpoint_interval", int),
    "checkpoints_total_limit": ("checkpoints_total_limit", int),
    "mixed_precision": ("mixed_precision", str),
    "dataloader_num_workers": ("num_workers", int),
    "state_noise_snr": ("state_noise_snr", float),
    "image_aug": ("image_aug", bool),
    "dataset_type": ("dataset_type", str),
    "gradient_checkpointing": ("gradient_checkpointing", bool),
    "deepspeed": ("deepspeed", str),
}
# Flags RDT main.py (and its HF ancestors) know that the doctor does not judge.
RDT_KNOWN = {
    "pretrained_model_name_or_path", "pretrained_text_encoder_name_or_path", "pretrained_vision_encoder_name_or_path",
    "output_dir", "sample_batch_size", "sample_period", "report_to", "load_from_hdf5", "precomp_lang_embed",
    "seed", "resume_from_checkpoint", "config_path", "cond_mask_prob", "cam_ext_mask_prob", "state_noise_snr",
    "use_8bit_adam", "adam_beta1", "adam_beta2", "adam_weight_decay", "adam_epsilon", "max_grad_norm",
    "lr_num_cycles", "lr_power", "scale_lr", "allow_tf32", "set_grads_to_none", "logging_dir", "num_train_epochs",
    "local_rank", "dataset_type", "deepspeed", "alpha",
}
# RDT main.py defaults when a flag is absent.
RDT_DEFAULTS = {"gradient_accumulation_steps": 1, "lr_scheduler": "constant", "warmup_steps": 500,
                "num_workers": 0, "image_aug": False, "mixed_precision": "no", "learning_rate": 5e-6,
                "checkpoint_interval": 500, "checkpoints_total_limit": None, "state_noise_snr": None}


@dataclass
class Setup:
    kind: str  # "script" or "yaml"
    values: dict[str, Any]
    origin: dict[str, str]
    world_size: int
    world_size_origin: str
    unknown_flags: list[str] = field(default_factory=list)
    launch: LaunchScript | None = None
    cfg: AtlasConfig | None = None
    text: str = ""

    @property
    def effective_batch_size(self) -> int:
        return self.values["micro_batch_size"] * self.world_size * (self.values.get("gradient_accumulation_steps") or 1)


def _cast(value: Any, kind: type) -> Any:
    if kind is bool:
        return value is True or str(value).lower() in ("1", "true", "yes")
    try:
        return kind(value)
    except (TypeError, ValueError):
        return value


def setup_from_script(text: str, gpus: int | None = None) -> Setup:
    """Atlas words from the script's launch command; flags it does not know are kept in `unknown_flags`."""
    launch = parse_launch_script(text)
    command = launch.training
    if command is None:
        raise ValueError("no launch command found (accelerate launch, torchrun, deepspeed or python)")
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, default in RDT_DEFAULTS.items():
        values[key], origin[key] = default, "main.py default (flag absent)"
    unknown = []
    for flag, value in command.args.items():
        if flag in RDT_FLAGS:
            word, kind = RDT_FLAGS[flag]
            values[word], origin[word] = _cast(value, kind), f"--{flag}"
        elif flag not in RDT_KNOWN:
            unknown.append(f"--{flag}")
    launcher_mp = command.launcher_args.get("mixed_precision")
    if "mixed_precision" not in command.args and isinstance(launcher_mp, str):
        values["mixed_precision"], origin["mixed_precision"] = launcher_mp, f"{command.launcher} --mixed_precision"
    values["strategy"], origin["strategy"] = _strategy(command.launcher, command.launcher_args, values.get("deepspeed"))
    values["sampling"], origin["sampling"] = "random_episode", "RDT HDF5VLADataset (random episode, random step)"
    world = command.world_size
    if world is None:
        world, world_origin = gpus or 1, "--gpus" if gpus else "assumed 1 (script does not say)"
    else:
        world_origin = _world_origin(command)
    values.setdefault("micro_batch_size", 1)
    return Setup("script", values, origin, world, world_origin, unknown, launch, None, text)


def _strategy(launcher: str, args: dict, deepspeed_cfg: Any) -> tuple[str, str]:
    if isinstance(deepspeed_cfg, str) and deepspeed_cfg:
        for stage in ("3", "2", "1"):
            if f"zero{stage}" in deepspeed_cfg.replace("_", "").lower():
                return f"zero{stage}", f"--deepspeed={deepspeed_cfg}"
        return "zero2", f"--deepspeed={deepspeed_cfg} (stage not in the name; assumed 2)"
    if args.get("use_deepspeed"):
        return f"zero{args.get('zero_stage', 2)}", "accelerate --use_deepspeed"
    if args.get("use_fsdp"):
        return "fsdp", "accelerate --use_fsdp"
    return "ddp", (f"{launcher} without --use_deepspeed/--use_fsdp, and no --deepspeed for main.py (its default is "
                   "None: Accelerator(deepspeed_plugin=None), so plain DDP; RDT's finetune.sh passes "
                   "--deepspeed=./configs/zero2.json)")


def _world_origin(command) -> str:
    a = command.launcher_args
    for key in ("num_processes", "nproc_per_node", "num_gpus"):
        if key in a:
            nodes = a.get("nnodes") or a.get("num_machines") or a.get("num_nodes")
            return f"{command.launcher} --{key} {a[key]}" + (f" x {nodes} nodes" if nodes else "")
    if command.launcher == "python":
        return "python (one process)"
    return "CUDA_VISIBLE_DEVICES"


def setup_from_yaml(path: str | Path, gpus: int | None = None) -> Setup:
    cfg = load_config(path)
    t, d = cfg.training, cfg.data
    world = gpus or 1
    run = resolve_run_plan(cfg, Hardware(world_size=world))  # the batch `atlas train` would run (or its error)
    values = {
        "micro_batch_size": run.micro_batch_size, "gradient_accumulation_steps": run.gradient_accumulation_steps,
        "learning_rate": t.learning_rate, "lr_scheduler": t.lr_scheduler, "warmup_steps": t.warmup_steps,
        "max_steps": t.max_steps, "checkpoint_interval": t.checkpoint_interval,
        "checkpoints_total_limit": t.checkpoints_total_limit, "mixed_precision": run.mixed_precision,
        "num_workers": cfg.data_loading.num_workers, "sampling": d.sampling, "strategy": t.strategy,
        "gradient_checkpointing": cfg.memory_optimization.gradient_checkpointing,
        "state_noise_snr": getattr(d, "state_noise_snr", None),
        "image_aug": bool(getattr(getattr(d, "image_aug", None), "enabled", False)),
    }
    keys = {"micro_batch_size": "data.batch_size", "sampling": "data.sampling", "num_workers": "data_loading.num_workers",
            "gradient_checkpointing": "memory_optimization.gradient_checkpointing", "state_noise_snr": "data.state_noise_snr",
            "image_aug": "data.image_aug"}
    origin = {k: keys.get(k, f"training.{k}") for k in values}
    return Setup("yaml", values, origin, world, "--gpus" if gpus else "assumed 1 (--gpus not given)", [], None, cfg,
                 Path(path).read_text())


def read_setup(path: str | Path, gpus: int | None = None) -> Setup:
    """YAML by extension or content; anything else is read as a shell script."""
    path = Path(path)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        return setup_from_yaml(path, gpus)
    return setup_from_script(text, gpus)
