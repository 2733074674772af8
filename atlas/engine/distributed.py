"""Rank-awareness and device placement, in one module.

Reads the launcher's environment (torchrun, torch.distributed.launch, accelerate launch, SLURM via
torchrun) and forms the process group: gloo on CPU, NCCL on GPU. If WORLD_SIZE > 1 but the group is
not really formed, it stops instead of training N independent copies silently.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from atlas.config.errors import ConfigError


class DistributedSetupError(ConfigError):
    """A launch that would not really be distributed; a setup problem the user fixes (exit code 2)."""


@dataclass
class DistContext:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(*names: str, default: int) -> int:
    for name in names:
        if os.environ.get(name, "") != "":
            return int(os.environ[name])
    return default


def pick_device(local_rank: int) -> torch.device:
    forced = os.environ.get("ATLAS_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        # LOCAL_RANK indexes the devices CUDA_VISIBLE_DEVICES leaves visible.
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_distributed(timeout_s: float = 3600.0) -> DistContext:
    """Form the process group; the long timeout covers rank 0's in-training simulation evaluation."""
    world_size = _env_int("WORLD_SIZE", default=1)
    rank = _env_int("RANK", default=0)
    local_rank = _env_int("LOCAL_RANK", default=rank)
    device = pick_device(local_rank)
    if world_size <= 1:
        return DistContext(0, 0, 1, device, None)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    formed = dist.get_world_size()
    probe = torch.ones(1, device=device)
    dist.all_reduce(probe)
    if formed != world_size or int(probe.item()) != world_size:
        raise DistributedSetupError(
            f"WORLD_SIZE={world_size} but the process group holds {formed} process(es) "
            f"(all-reduce saw {int(probe.item())}): training is not really distributed. "
            "On CPU use `torchrun --nproc_per_node=N` (accelerate's --cpu mode starts one process)."
        )
    return DistContext(dist.get_rank(), local_rank, world_size, device, backend)


def _launcher_command_line() -> list[str]:
    """The parent process's argv (Linux), to see what the user asked the launcher for."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def requested_processes(argv: list[str]) -> int | None:
    """`--num_processes N` of an `accelerate launch` command line, if that is what started us."""
    if not any(a.endswith("accelerate") for a in argv) or "launch" not in argv:
        return None
    for i, arg in enumerate(argv):
        if arg in ("--num_processes", "--num-processes") and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith(("--num_processes=", "--num-processes=")):
            return int(arg.split("=", 1)[1])
    return None


def check_launch_environment(argv: list[str] | None = None) -> None:
    """Catch launches that asked for several processes but started one: `accelerate launch --cpu
    --num_processes 2` (and `--num_processes 2` without --multi_gpu on a machine without GPUs) start a
    single process, which would silently train alone."""
    asked = requested_processes(_launcher_command_line() if argv is None else argv)
    asked = asked or _env_int("ATLAS_EXPECT_WORLD_SIZE", default=0)
    world = _env_int("WORLD_SIZE", default=1)
    if asked and asked > 1 and world != asked:
        raise DistributedSetupError(
            f"the launcher was asked for {asked} processes but started this one with WORLD_SIZE={world}: "
            "each would train alone. accelerate's --cpu mode (and --num_processes without --multi_gpu on a "
            "machine without GPUs) starts one process. Use `accelerate launch --multi_gpu --num_processes N` "
            "or `torchrun --nproc_per_node=N -m atlas.train ...`."
        )


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_sum_async(tensor: torch.Tensor, ctx: DistContext):
    """Start a sum all-reduce in place; the returned work's `wait()` completes it (None: one process)."""
    if not ctx.distributed:
        return None
    return dist.all_reduce(tensor, op=dist.ReduceOp.SUM, async_op=True)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def broadcast_object(obj, ctx: DistContext):
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's `obj`, in rank order (a collective; [obj] with one process)."""
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def wrap_model(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DDP over trainable parameters only; frozen ones never enter the all-reduce. (The other
    strategies, FSDP2 and DeepSpeed, are set up in atlas/engine/strategies/.)"""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=False)


def no_sync(model: torch.nn.Module, skip: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of an optimizer step."""
    if skip and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def shutdown(ctx: DistContext, clean: bool = True) -> None:
    """Tear the process group down; after a clean finish every rank first meets at a barrier, so none
    destroys the group while another still has a collective in flight (in CI, 2026-11-30, a rank aborted in
    gloo's teardown with "terminate called without an active exception" right after a finished run). After
    an error there is no barrier: the other ranks may never arrive."""
    if ctx.distributed and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()
