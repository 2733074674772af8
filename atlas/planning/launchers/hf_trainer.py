"""Scripts built on the Hugging Face Trainer (HfArgumentParser over TrainingArguments), read as
transformers 5.24 does (src/transformers/training_args.py, optimization.py line numbers of that release).

Facts:
- `--per_device_train_batch_size` (training_args.py:777, default 8); `--gradient_accumulation_steps` (:849, 1):
  effective = per device x devices x accumulation (:854). Under plain `python` with several visible GPUs the
  Trainer uses DataParallel: train_batch_size = per device x n_gpu (:1820-1825).
- `--learning_rate` (:787, 5e-5), never scaled by devices; `--lr_scheduler_type` (:788, linear).
- `--warmup_steps` (:798): an integer, or a float in [0, 1) as a ratio of the total steps (get_warmup_steps,
  :2154-2160); transformers 4.x spelled the ratio `--warmup_ratio`.
- get_scheduler('constant') returns a schedule without warmup (optimization.py:1014-1015): warmup is ignored.
- `--bf16` / `--fp16` (:874, :880); `--deepspeed ds.json` (:1463): the ZeRO stage and offload come from the JSON.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from atlas.planning.launchers.base import (
    FAIL,
    Launcher,
    Reading,
    Rule,
    as_bool,
    as_float,
    as_int,
    quoted_precision,
    register_launcher,
)
from atlas.planning.launchers.common import accelerate_strategy, deepspeed_strategy, launcher_world

if TYPE_CHECKING:
    from atlas.planning.launch import LaunchCommand

KNOWN = {"per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type",
         "warmup_steps", "warmup_ratio", "bf16", "fp16", "deepspeed", "max_steps", "num_train_epochs",
         "dataloader_num_workers", "save_total_limit", "save_steps", "output_dir", "logging_steps", "seed",
         "gradient_checkpointing", "weight_decay", "per_device_eval_batch_size", "report_to", "do_train", "do_eval",
         "overwrite_output_dir", "model_name_or_path", "dataset_name", "eval_strategy", "save_strategy",
         "logging_dir", "run_name", "tf32", "max_grad_norm", "optim", "remove_unused_columns", "push_to_hub"}


@register_launcher
class HFTrainer(Launcher):
    key = "hf-trainer"
    label = "HF Trainer script"

    def recognises(self, script: str, tokens: list[str]) -> bool:
        return any(t.lstrip("-").split("=", 1)[0] == "per_device_train_batch_size" for t in tokens if t.startswith("--"))

    def read(self, command: LaunchCommand, gpus: int | None = None) -> Reading:
        a = command.args
        world, world_origin = launcher_world(command, gpus)
        devices = command.visible_devices
        if command.launcher == "python" and devices and len(devices) > 1:
            world, world_origin = len(devices), ("one python process, DataParallel over the visible GPUs "
                                                 "(training_args.py:1820-1825: per device x n_gpu)")
        r = Reading({}, {}, world, world_origin,
                    batch_note="--per_device_train_batch_size is per device (training_args.py:777)")

        def get(flag: str, default, cast, note: str):
            value = cast(a[flag]) if flag in a else None
            return (value, f"--{flag}") if value is not None else (default, f"TrainingArguments default ({note})")

        r.set("micro_batch_size", *get("per_device_train_batch_size", 8, as_int, "training_args.py:777"))
        r.set("gradient_accumulation_steps", *get("gradient_accumulation_steps", 1, as_int, "training_args.py:849"))
        r.set("learning_rate", *get("learning_rate", 5e-5, as_float, "training_args.py:787"))
        r.set("lr_scheduler", *get("lr_scheduler_type", "linear", str, "training_args.py:788"))
        r.set("max_steps", *get("max_steps", -1, as_int, "training_args.py:779: epochs decide"))
        r.set("num_workers", *get("dataloader_num_workers", 0, as_int, "training_args.py:1323"))
        r.set("checkpoints_total_limit", *get("save_total_limit", None, as_int, "keeps every checkpoint"))
        precision = "bf16" if as_bool(a.get("bf16", False)) else ("fp16" if as_bool(a.get("fp16", False)) else "no")
        r.set("mixed_precision", precision, "--bf16/--fp16" if precision != "no" else "TrainingArguments default (fp32)")
        r.set("gradient_checkpointing", as_bool(a.get("gradient_checkpointing", False)), "--gradient_checkpointing")
        strategy = deepspeed_strategy(a.get("deepspeed")) or accelerate_strategy(command) or ("ddp", "Trainer DDP")
        r.set("strategy", *strategy)
        self._warmup(r, a)
        r.unknown_flags = [f"--{k}" for k in a if k not in KNOWN]
        r.model_origin = f"--model_name_or_path {a.get('model_name_or_path', '?')}: an arbitrary model, not planned"
        r.planning = quoted_precision(precision)
        return r

    @staticmethod
    def _warmup(r: Reading, a: dict) -> None:
        steps = r.values["max_steps"]
        raw = as_float(a.get("warmup_ratio")) if "warmup_ratio" in a else as_float(a.get("warmup_steps"))
        origin = "--warmup_ratio" if "warmup_ratio" in a else ("--warmup_steps" if "warmup_steps" in a else
                                                                "TrainingArguments default 0 (training_args.py:798)")
        raw = raw or 0.0
        if raw and raw < 1:
            warm = math.ceil(steps * raw) if steps > 0 else None
            origin += f" = ratio {raw:g} of {steps if steps > 0 else 'the total'} steps (training_args.py:2154-2160)"
        else:
            warm = int(raw)
        r.set("warmup_steps", warm, origin)
        real = warm
        if r.values["lr_scheduler"] == "constant" and (warm or raw):
            real, r.values["warmup_note"] = 0, "ignored"
            r.rules.append(Rule(
                "lr_scheduler", f"constant + warmup {warm if warm is not None else raw}", FAIL,
                "transformers' get_scheduler('constant') builds no warmup (optimization.py:1014-1015): the run starts "
                "at the full LR; use --lr_scheduler_type constant_with_warmup",
                "transformers 的 'constant' 不做预热；请改用 --lr_scheduler_type constant_with_warmup",
                recipe="constant_with_warmup"))
        r.values["effective_warmup_steps"] = real

    def batch_flags(self, micro: int, accumulation: int, world: int) -> dict[str, str]:
        return {"per_device_train_batch_size": str(micro), "gradient_accumulation_steps": str(accumulation)}
