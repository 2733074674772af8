"""LeRobot `lerobot-train` (draccus flags), read as huggingface/lerobot at 7427f318 does.

Facts, with file:line in that tree:
- `--batch_size` is per process (src/lerobot/configs/train.py:133, default 8); one loop step consumes it on
  every data-parallel worker: effective = batch_size x workers x accumulation (scripts/lerobot_train.py:598-600).
- `--steps` (train.py:142, default 100,000) counts loop steps; the scheduler steps once per loop step
  (lerobot_train.py:235-237), and accelerate does not rescale it by the processes
  (configs/accelerator.py:237-239 step_scheduler_with_optimizer=False). Accumulation:
  `--accelerator.gradient_accumulation.steps` (configs/accelerator.py:130).
- The LR comes from the policy preset as given, never scaled by processes (optim/factory.py:38-39):
  `--policy.optimizer_lr`, `--policy.scheduler_warmup_steps`, `--policy.scheduler_decay_steps`,
  `--policy.scheduler_decay_lr` (pi0/pi05/pi0_fast/smolvla configuration_*.py).
- cosine_decay_with_warmup scales warmup and decay down when steps < scheduler_decay_steps:
  warmup = int(warmup x steps / decay_steps) (optim/schedulers.py:145-152).
- `--num_workers` (train.py:132, default 4) per process; `--peft.*` LoRA (configs/default.py:196-225, r=16).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atlas.planning.launchers.base import (
    OK,
    WARN,
    Launcher,
    Reading,
    Rule,
    as_bool,
    as_float,
    as_int,
    basename,
    quoted_precision,
    register_launcher,
)
from atlas.planning.launchers.common import accelerate_strategy, launcher_precision, launcher_world

if TYPE_CHECKING:
    from atlas.planning.launch import LaunchCommand

# Policy defaults: (optimizer_lr, scheduler_warmup_steps, scheduler_decay_steps, scheduler_decay_lr, file:line)
POLICY_DEFAULTS = {
    "pi0": (2.5e-5, 1000, 30_000, 2.5e-6, "policies/pi0/configuration_pi0.py:90-101"),
    "pi05": (2.5e-5, 1000, 30_000, 2.5e-6, "policies/pi05/configuration_pi05.py:108-119"),
    "pi0_fast": (2.5e-5, 1000, 30_000, 2.5e-6, "policies/pi0_fast/configuration_pi0_fast.py:89-100"),
    "smolvla": (1e-4, 1000, 30_000, 2.5e-6, "policies/smolvla/configuration_smolvla.py:74-82"),
}
PRESETS = {"pi0": "pi0", "pi05": "pi05", "pi0_fast": "pi0-fast", "smolvla": "smolvla"}
# Hub checkpoints whose policy type `--policy.path` implies (their config.json "type").
KNOWN_PATHS = {"lerobot/pi0_base": "pi0", "lerobot/pi0": "pi0", "lerobot/pi05_base": "pi05",
               "lerobot/pi05_libero_base": "pi05", "lerobot/pi05_libero": "pi05", "lerobot/pi0fast_base": "pi0_fast",
               "lerobot/smolvla_base": "smolvla"}
KNOWN = {"batch_size", "steps", "num_workers", "output_dir", "job_name", "seed", "save_freq", "log_freq", "resume",
         "env_eval_freq", "eval_steps", "use_policy_training_preset", "save_checkpoint", "cudnn_deterministic",
         "prefetch_factor", "persistent_workers", "rename_map", "config_path"}
KNOWN_PREFIXES = ("policy.", "dataset.", "wandb.", "env.", "eval.", "peft.", "optimizer.", "scheduler.",
                  "accelerator.", "parallelism.", "ema.", "job.")


@register_launcher
class LeRobotTrain(Launcher):
    key = "lerobot"
    label = "LeRobot lerobot-train"
    entry_points = frozenset({"lerobot-train"})

    def recognises(self, script: str, tokens: list[str]) -> bool:
        name = basename(script)
        return name in ("lerobot-train", "lerobot_train.py") or script in (
            "-m lerobot.scripts.lerobot_train", "-m lerobot.scripts.train") or (
            script.endswith("lerobot/scripts/train.py"))

    def read(self, command: LaunchCommand, gpus: int | None = None) -> Reading:
        a = command.args
        world, world_origin = launcher_world(command, gpus)
        r = Reading({}, {}, world, world_origin, batch_note="--batch_size is per process (LeRobot configs/train.py:133)")
        policy, policy_origin = self._policy_type(a)
        steps = as_int(a.get("steps")) or 100_000
        r.set("micro_batch_size", as_int(a.get("batch_size")) or 8,
              "--batch_size" if "batch_size" in a else "LeRobot default 8 (configs/train.py:133)")
        accumulation = as_int(a.get("accelerator.gradient_accumulation.steps")) or 1
        r.set("gradient_accumulation_steps", accumulation,
              "--accelerator.gradient_accumulation.steps" if accumulation > 1 else "LeRobot default 1")
        r.set("max_steps", steps, "--steps" if "steps" in a else "LeRobot default 100000 (configs/train.py:142)")
        r.set("num_workers", as_int(a.get("num_workers")) or (0 if a.get("num_workers") == "0" else 4),
              "--num_workers" if "num_workers" in a else "LeRobot default 4 (configs/train.py:132)")
        mp = launcher_precision(command) or a.get("accelerator.mixed_precision")
        if not mp and str(a.get("policy.dtype", "")).lower() == "bfloat16":
            mp = "bf16"
        r.set("mixed_precision", mp or "no", f"{command.launcher} --mixed_precision" if launcher_precision(command)
              else ("--policy.dtype" if mp else "accelerate default (no)"))
        r.set("strategy", *(accelerate_strategy(command) or ("ddp", "LeRobot data parallel over accelerate processes")))
        r.set("gradient_checkpointing", as_bool(a.get("policy.gradient_checkpointing", False)),
              "--policy.gradient_checkpointing")
        r.identifiers = {"policy_type": policy} if policy else {}
        lora = any(k.startswith("peft.") for k in a)
        if policy in PRESETS:
            r.model = PRESETS[policy] + ("-lora" if lora else "")
            r.model_origin = f"--policy.type={policy}" if policy_origin == "type" else f"--policy.path -> {policy}"
            if lora:
                r.model_origin += f" with --peft.* (LoRA r={a.get('peft.r', 16)}; planned at the shape's LoRA ranks)"
        elif policy:
            r.model_origin = f"policy {policy}: no planning shape for it"
        self._schedule(r, a, policy, steps, accumulation)
        self._plan_inputs(r, a, policy)
        r.unknown_flags = [f"--{k}" for k in a if k not in KNOWN and not k.startswith(KNOWN_PREFIXES)]
        r.rules.append(Rule("learning_rate scaling", "not scaled", OK,
                            f"LeRobot uses the policy's LR as given on {world} processes (optim/factory.py:38-39 "
                            "builds the preset; no scaling by processes); effective batch grows with the processes",
                            f"LeRobot 在 {world} 个进程上按原值使用学习率（不随进程数缩放）；有效 batch 随进程数增长"))
        return r

    @staticmethod
    def _policy_type(a: dict) -> tuple[str | None, str]:
        if isinstance(a.get("policy.type"), str):
            return a["policy.type"], "type"
        path = a.get("policy.path")
        if isinstance(path, str):
            return KNOWN_PATHS.get(path.rstrip("/")), "path"
        return None, ""

    @staticmethod
    def _schedule(r: Reading, a: dict, policy: str | None, steps: int, accumulation: int) -> None:
        lr, warm, decay, decay_lr, where = POLICY_DEFAULTS.get(policy, (None, None, None, None, ""))
        src = f"lerobot {where}"

        def flag(name: str, default, cast):
            value = cast(a.get(f"policy.{name}")) if f"policy.{name}" in a else None
            return (value, f"--policy.{name}") if value is not None else (default, f"{policy} default ({src})")

        lr, lr_origin = flag("optimizer_lr", lr, as_float)
        warm, warm_origin = flag("scheduler_warmup_steps", warm, as_int)
        decay, _ = flag("scheduler_decay_steps", decay, as_int)
        decay_lr, _ = flag("scheduler_decay_lr", decay_lr, as_float)
        if lr is not None:
            r.set("learning_rate", lr, lr_origin)
        if warm is None:
            return
        r.set("lr_scheduler", "cosine_decay_with_warmup", f"{policy} scheduler preset (optim/schedulers.py:130)")
        r.set("warmup_steps", warm, warm_origin)
        real = warm
        if decay and steps < decay:
            real = int(warm * steps / decay)
            r.values["warmup_note"] = f"scaled by steps/decay = {steps}/{decay}"
            r.rules.append(Rule(
                "warmup (real)", f"{warm} -> {real}", WARN,
                f"--steps={steps} < scheduler_decay_steps={decay}: LeRobot scales warmup and decay by {steps}/{decay} "
                f"(optim/schedulers.py:145-152), so the run warms up for {real} steps, not {warm}, and decays over "
                f"{steps}; set --policy.scheduler_decay_steps={steps} and the warmup you want",
                f"--steps={steps} 小于 scheduler_decay_steps={decay}：LeRobot 按 {steps}/{decay} 缩放预热和衰减"
                f"（optim/schedulers.py:145-152），实际预热 {real} 步而不是 {warm}", recipe=str(warm)))
        if accumulation > 1:
            r.rules.append(Rule(
                "warmup (optimizer steps)", f"{real} loop = {real // accumulation} updates", WARN,
                f"the scheduler steps every loop step (lerobot_train.py:235-237), {accumulation} per optimizer update "
                f"under accumulation: warmup lasts {real // accumulation} updates"))
        r.values["effective_warmup_steps"] = real
        r.values["decay_steps"] = min(decay, steps) if decay else None
        r.values["decay_lr"] = decay_lr

    @staticmethod
    def _plan_inputs(r: Reading, a: dict, policy: str | None) -> None:
        # LIBERO's two views, plus the empty camera slots pi0.x may be asked to pad (docs/source/pi05.mdx:86)
        cameras = 2 + (as_int(a.get("policy.empty_cameras")) or 0)
        image = 512 if policy == "smolvla" else 224
        horizon = as_int(a.get("policy.chunk_size")) or 50
        r.planning = [f"data.num_cameras={cameras}", f"data.image_size={image}", f"model.action_horizon={horizon}",
                      "data.state_dim=8", "data.action_dim=7", *quoted_precision(r.values.get("mixed_precision")),
                      f"memory_optimization.gradient_checkpointing={str(r.values['gradient_checkpointing']).lower()}"]

    def batch_flags(self, micro: int, accumulation: int, world: int) -> dict[str, str]:
        flags = {"batch_size": str(micro)}
        if accumulation > 1:
            flags["accelerator.gradient_accumulation.steps"] = str(accumulation)
        return flags
