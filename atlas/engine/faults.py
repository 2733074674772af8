"""Fault injectors (`ATLAS_INJECT_*`): test hooks, in one place (production parts live elsewhere: the step
clock in clock.py, the non-finite watch in nonfinite.py).

Reliability claims are only worth what their tests prove, and the tests must reach the fault through
the code that runs in production. So each injector acts inside the real path (a hook on the policy's
forward, a step inside `CheckpointStore.commit`), is read from the environment once per run, and does
nothing unless its variable is set:

  ATLAS_INJECT_OOM_AT_STEP=S[:RANK[:MICRO]] a real torch.OutOfMemoryError in the forward of step S (oom.py),
                                            in its MICRO-th micro-batch (0-based; default 0)
  ATLAS_INJECT_NAN_AT_STEP=S[:COUNT[:grad]] the forward's losses become NaN for COUNT steps from S (default
                                            1); with :grad the losses stay finite and their gradient is inf
                                            (what an fp16 overflow in backward looks like)
  ATLAS_INJECT_HANG_AT_STEP=S:SECONDS[:val] sleep in the forward of step S (training, or validation with :val)
  ATLAS_INJECT_ENOSPC_AT_STEP=S[:FILE]      the checkpoint of step S fails with OSError(ENOSPC) part-way through
                                            writing FILE (model.safetensors, ema/model.safetensors, optimizer.pt,
                                            ...; default manifest.json, the last file): the real writer writes it,
                                            the injector cuts it to half and raises what a full disk raises
  ATLAS_INJECT_KILL_IN_SAVE=K[:PHASE]       the K-th checkpoint save of this process pauses (logging a line
                                            and sleeping) so a test can SIGKILL it there; PHASE is where:
                                            files (written, no manifest), rename (sealed, not renamed; the
                                            default) or pointer (renamed, `latest` not yet swapped)
  ATLAS_INJECT_SLOW_READ_MS=MS[:RANK]       every sample the synthetic format reads takes MS ms longer, on
                                            RANK only (default every rank): a slow reader for the input-bound
                                            and slow-rank checks of `atlas doctor RUN_DIR` (data/synthetic.py)
"""

from __future__ import annotations

import errno
import logging
import math
import os
import time
from dataclasses import dataclass

import torch
from torch import nn

from atlas.engine.clock import StepClock
from atlas.engine.oom import OOMInjector

log = logging.getLogger("atlas")

SAVE_PHASES = ("files", "rename", "pointer")
PAUSE_S = 600.0  # an injected pause outlives any test that waits for it, but not the machine


def _ints(spec: str, name: str, count: int) -> list[int]:
    try:
        return [int(part) for part in spec.split(":")[:count]]
    except ValueError:
        raise ValueError(f"{name}={spec!r}: expected integers separated by ':'") from None


def slow_read_seconds(rank: int) -> float:
    """`ATLAS_INJECT_SLOW_READ_MS`: the extra seconds per sample read on this rank (0.0 when unset)."""
    spec = os.environ.get("ATLAS_INJECT_SLOW_READ_MS", "")
    if not spec:
        return 0.0
    ms, _, only_rank = spec.partition(":")
    try:
        delay, target = float(ms), int(only_rank) if only_rank else None
    except ValueError:
        raise ValueError(f"ATLAS_INJECT_SLOW_READ_MS={spec!r}: expected MS[:RANK]") from None
    return delay / 1000.0 if target is None or target == rank else 0.0


class FaultInjector(OOMInjector):
    """The loop's forward-side injectors (OOM, NaN, hang), acting at the step the clock shows."""

    def __init__(self, rank: int, clock: StepClock) -> None:
        super().__init__(rank, clock)
        self.rank = rank
        nan = os.environ.get("ATLAS_INJECT_NAN_AT_STEP", "")
        first, *count = _ints(nan, "ATLAS_INJECT_NAN_AT_STEP", 2) if nan else [0]
        self.nan_steps = range(first, first + (count[0] if count else 1)) if first else range(0)
        self.nan_in_grad = nan.endswith(":grad")
        hang = os.environ.get("ATLAS_INJECT_HANG_AT_STEP", "")
        self.hang_step, self.hang_s, self.hang_in_val = 0, 0.0, False
        if hang:
            parts = hang.split(":")
            try:
                self.hang_step, self.hang_s = int(parts[0]), float(parts[1])
            except (ValueError, IndexError):
                raise ValueError(f"ATLAS_INJECT_HANG_AT_STEP={hang!r}: expected STEP:SECONDS[:val]") from None
            self.hang_in_val = parts[2:] == ["val"]

    def attach(self, model: nn.Module) -> None:
        super().attach(model)  # OOM pre-hook
        if self.hang_step:
            model.register_forward_pre_hook(self._hang)
        if self.nan_steps:
            model.register_forward_hook(self._poison)

    def _hang(self, module: nn.Module, args) -> None:
        if self.clock.step == self.hang_step and module.training != self.hang_in_val:
            self.hang_step = 0  # once
            where = "validation" if self.hang_in_val else "training"
            log.warning(f"injected hang: sleeping {self.hang_s:g} s in the {where} forward of step {self.clock.step} "
                        f"(ATLAS_INJECT_HANG_AT_STEP, rank {self.rank}, pid {os.getpid()})")
            time.sleep(self.hang_s)

    def _poison(self, module: nn.Module, args, out):
        if not module.training or not isinstance(out, dict) or self.clock.step not in self.nan_steps:
            return None
        if self.nan_in_grad:
            out["loss_sum"].register_hook(lambda grad: grad * math.inf)
            return None
        return {k: (v * math.nan if k != "num_valid" and torch.is_tensor(v) and v.is_floating_point() else v)
                for k, v in out.items()}


@dataclass
class SaveFaults:
    """Injectors inside the checkpoint's save path (`CheckpointStore.write_file` and `commit`)."""

    enospc_step: int = 0
    enospc_file: str = "manifest.json"  # the checkpoint file (relative to its folder) whose write fails
    pause_save: int = 0  # 1-based index of the save to pause in (0: never)
    pause_phase: str = "rename"
    saves: int = 0

    @classmethod
    def from_env(cls) -> SaveFaults:
        enospc = os.environ.get("ATLAS_INJECT_ENOSPC_AT_STEP", "")
        kill = os.environ.get("ATLAS_INJECT_KILL_IN_SAVE", "")
        faults = cls(enospc_step=_ints(enospc, "ATLAS_INJECT_ENOSPC_AT_STEP", 1)[0] if enospc else 0)
        if enospc.count(":"):
            faults.enospc_file = enospc.split(":", 1)[1]
        if kill:
            index, _, phase = kill.partition(":")
            faults.pause_save = _ints(index, "ATLAS_INJECT_KILL_IN_SAVE", 1)[0]
            faults.pause_phase = phase or "rename"
            if faults.pause_phase not in SAVE_PHASES:
                raise ValueError(f"ATLAS_INJECT_KILL_IN_SAVE={kill!r}: phase must be one of {', '.join(SAVE_PHASES)}")
        return faults

    def begin_save(self) -> None:
        self.saves += 1

    def wrote(self, step: int, folder: os.PathLike, name: str) -> None:
        """Called after each file of a checkpoint is written; fails the targeted one as a full disk would: the
        file left half-written and an OSError(ENOSPC) without a file name (what a write() raises)."""
        if self.enospc_step != step or name != self.enospc_file:
            return
        self.enospc_step = 0  # once: later saves succeed (on_save_error: continue)
        target = os.path.join(folder, name)
        if os.stat(target).st_nlink > 1:  # a hard link (frozen weights): a failed link() leaves no file, and
            os.unlink(target)             # truncating would damage the earlier checkpoint that shares it
        else:
            os.truncate(target, os.path.getsize(target) // 2)
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (injected: ATLAS_INJECT_ENOSPC_AT_STEP)")

    def at(self, phase: str, step: int, folder: os.PathLike) -> None:
        """Called by commit at each phase; pauses there when asked to."""
        if self.pause_save and self.saves == self.pause_save and phase == self.pause_phase:
            log.warning(f"injected pause in the save of step {step} (phase {phase}, pid {os.getpid()}): "
                        "waiting to be killed (ATLAS_INJECT_KILL_IN_SAVE)")
            for handler in log.handlers:
                handler.flush()
            time.sleep(PAUSE_S)
