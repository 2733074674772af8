"""Readings more than one tool shares: how many processes a launcher starts, which ZeRO stage a DeepSpeed
JSON asks for, and the scheduler trap of the libraries whose 'constant' ignores warmup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atlas.planning.launch import LaunchCommand


def launcher_world(command: LaunchCommand, gpus: int | None) -> tuple[int, str]:
    """Processes the launcher starts (each one device), and where that number comes from."""
    world = command.world_size
    if world is None:
        return (gpus, "--gpus") if gpus else (1, "assumed 1 (script does not say)")
    a = command.launcher_args
    for key in ("num_processes", "nproc_per_node", "num_gpus"):
        if key in a:
            nodes = a.get("nnodes") or a.get("num_machines") or a.get("num_nodes")
            return world, f"{command.launcher} --{key} {a[key]}" + (f" x {nodes} nodes" if nodes else "")
    if command.launcher == "python":
        return world, "python (one process)"
    return world, "CUDA_VISIBLE_DEVICES"


def deepspeed_strategy(config: Any) -> tuple[str, str] | None:
    """ZeRO stage of a DeepSpeed config: from the JSON when the file exists (zero_optimization.stage and
    offload), else from its name (zero2.json); None when there is no config."""
    if not isinstance(config, str) or not config:
        return None
    path = Path(config)
    if path.is_file():
        try:
            zero = json.loads(path.read_text()).get("zero_optimization", {})
        except (OSError, ValueError):
            zero = None
        if isinstance(zero, dict):
            stage = int(zero.get("stage", 0) or 0)
            offload = [k.replace("offload_", "") for k in ("offload_optimizer", "offload_param")
                       if (zero.get(k) or {}).get("device") in ("cpu", "nvme")]
            note = f" (offloads {', '.join(offload)} to CPU/NVMe: GPU memory is lower than planned)" if offload else ""
            return (f"zero{stage}" if stage else "ddp"), f"--deepspeed={config}: zero_optimization.stage {stage}{note}"
    for stage in ("3", "2", "1"):
        if f"zero{stage}" in config.replace("_", "").lower():
            return f"zero{stage}", f"--deepspeed={config}"
    return "zero2", f"--deepspeed={config} (stage not in the name; assumed 2)"


def accelerate_strategy(command: LaunchCommand) -> tuple[str, str] | None:
    a = command.launcher_args
    if a.get("use_deepspeed"):
        return f"zero{a.get('zero_stage', 2)}", "accelerate --use_deepspeed"
    if a.get("use_fsdp"):
        return "fsdp", "accelerate --use_fsdp"
    return None


def launcher_precision(command: LaunchCommand) -> str | None:
    value = command.launcher_args.get("mixed_precision")
    return value if isinstance(value, str) else None
