"""Non-finite losses, gradients and weights: watched without host syncs, skipped, and named.

`NonFiniteWatch` keeps this step's loss terms, handed over by the loop (read only when a step turns
out non-finite, to name the NaN/inf ones). `NonFiniteGuard` drops such a step:
it names the terms (agreed across ranks), counts fp16 grad-scaler overflows apart (the scaler's own
skip, not an error), and stops with the last good checkpoint after `training.max_nonfinite_steps` in a row.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from atlas.engine import distributed as D
from atlas.engine.clock import StepClock
from atlas.errors import AtlasError


class NonFiniteError(AtlasError, RuntimeError):
    pass


class NonFiniteWatch:
    def __init__(self, clock: StepClock) -> None:
        self.clock = clock
        self._flags: dict[str, list[torch.Tensor]] = {}  # per loss term: each micro-batch's value (or flag)
        self._flags_step = -1

    def saw(self, out: dict) -> None:
        """The loop hands over each training micro-batch's output (what the loss was computed from, after
        any test injector's rewrite). Scalar terms are only kept (a reference, no device op): they are
        checked when a step turns out non-finite, which is rare, instead of costing reductions on every
        micro-batch. Larger outputs get their flag now, so no activation is held past its backward. A call
        from the loop rather than a forward hook: a hook sends every forward through nn.Module's slow path."""
        if not isinstance(out, dict):
            return
        if self._flags_step != self.clock.step:
            self._flags, self._flags_step = {}, self.clock.step
        for key, value in out.items():
            if key == "num_valid" or not (torch.is_tensor(value) and value.is_floating_point()):
                continue
            kept = value.detach() if value.numel() == 1 else ~torch.isfinite(value.detach()).all()
            self._flags.setdefault(key, []).append(kept)

    def nonfinite_terms(self) -> list[str]:
        """Loss terms (keys of the policy's output) that were NaN/inf in this step's micro-batches."""
        if self._flags_step != self.clock.step:
            return []

        def bad(kept: torch.Tensor) -> bool:
            return bool(kept) if kept.dtype == torch.bool else not bool(torch.isfinite(kept).all())

        return [key for key, values in self._flags.items() if any(bad(v) for v in values)]


class NonFiniteGuard:
    """What happens to a step whose loss or gradients are not finite (the update was not applied)."""

    def __init__(self, watch: NonFiniteWatch, limit: int, ctx: D.DistContext, log: logging.Logger) -> None:
        self.watch, self.limit, self.ctx, self.log = watch, limit, ctx, log
        self.scaler_skips = 0  # fp16 grad-scaler overflows, counted apart from real non-finite steps

    def skip(self, step: int, state, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
             last_good: str | None) -> None:
        """Drop the step's gradients; raise NonFiniteError after `limit` real non-finite steps in a row
        (counted in `state.nonfinite_in_a_row`, the trainer state a checkpoint carries across a resume)."""
        bad_terms = self.watch.nonfinite_terms()
        bad_loss = D.all_reduce_sum(torch.tensor([float(bool(bad_terms))], device=self.ctx.device), self.ctx).item() > 0
        scale = scaler.get_scale() if scaler is not None else None
        if scaler is not None:
            scaler.update()  # lowers the scale after inf/NaN; clears this step's unscale_ record
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and not bad_loss:  # finite losses, overflowing fp16 gradients: the scaler's own skip
            self.scaler_skips += 1
            self.log.info(f"fp16 grad scaler: gradients overflowed at step {step}, update skipped, scale "
                          f"{scale:g}->{scaler.get_scale():g} ({self.scaler_skips} scaler skips so far)")
            return
        state.nonfinite_in_a_row += 1
        what = f"loss terms: {', '.join(bad_terms)}" if bad_terms else (
            "loss terms: on another rank" if bad_loss else "gradients; every loss term finite")
        self.log.warning(f"non-finite loss/gradients at step {step} ({what}); update skipped "
                         f"({state.nonfinite_in_a_row} in a row, limit training.max_nonfinite_steps={self.limit})")
        if state.nonfinite_in_a_row >= self.limit:
            message = (f"{state.nonfinite_in_a_row} non-finite steps in a row (last: step {step}, {what}); "
                       f"stopping. Last good checkpoint: {last_good or 'none written yet'} (weights there "
                       "are from before the non-finite steps); lower the learning rate or check the data")
            self.log.error(message)
            raise NonFiniteError(message)

    def check_weights(self, policy: nn.Module, step: int, last_good) -> None:
        """Before a checkpoint is written: NaN/inf *weights* (an update can make them from finite gradients)
        stop the run naming them, so a non-finite checkpoint is never written, let alone linked as best.
        Checked where a save is due rather than every step (one reduction per tensor; figures in RESULTS.md)."""
        from atlas.engine.finite import nonfinite_parameters

        bad = nonfinite_parameters(policy.named_parameters())
        count = D.all_reduce_sum(torch.tensor([float(len(bad))], device=self.ctx.device), self.ctx).item()
        if count:
            where = ", ".join(bad) if bad else "on another rank"
            message = (f"non-finite weights after step {step} ({where}); stopping before writing a checkpoint. "
                       f"Last good checkpoint: {last_good or 'none written yet'}; lower the learning rate")
            self.log.error(message)
            raise NonFiniteError(message)
