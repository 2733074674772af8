"""One optimizer step: read its micro-batches, forward/backward each (backing off on out-of-memory without
changing the effective batch), then clip, update and follow with the EMA, or skip a non-finite step.

Each micro-batch contributes loss_sum x world_size / (valid elements of the effective batch): DDP, FSDP and
ZeRO all average gradients over ranks, so the sum over ranks and micro-batches is the large-batch mean,
however the step is split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from atlas.data.loader import resplit, valid_elements
from atlas.engine import distributed as D
from atlas.engine.checkpoint import TrainerState
from atlas.engine.compile import graphs_compiled
from atlas.engine.oom import halve
from atlas.engine.schedules import apply_learning_rate, learning_rate_at
from atlas.loop.parts import RunParts


@dataclass
class StepResult:
    lr: float
    loss_sum: torch.Tensor  # summed over this rank's micro-batches (NaN/inf ones are left out by the log window)
    valid: torch.Tensor | float  # valid action elements per rank (this step's share of the loss's denominator)
    grad_norm: torch.Tensor  # zero for a step that was not applied
    stop: bool  # some rank was asked to stop (agreed on the step's all-reduce)
    seconds: float = 0.0  # wall time of the step
    compiled_graphs: int = 0  # graphs torch.compile built during this step (its time is compile time)


class StepTotals:
    """This step's valid-element count over all ranks (the loss's denominator) and whether any rank was
    asked to stop. Several processes: one all-reduce started before the first forward and waited on only
    when the first loss is scaled, so its latency hides behind that forward; the stop flag rides on it and
    is read after the step's one host sync. One process: host numbers, no collective, no sync."""

    def __init__(self, ctx: D.DistContext, valid_here: float, stop_requested: bool) -> None:
        self.ctx = ctx
        self._stop = stop_requested
        self._valid: torch.Tensor | float | None = None
        self._scale: torch.Tensor | float | None = None
        self._pending = None
        if ctx.distributed:
            self._counts = torch.tensor([valid_here, float(stop_requested)], device=ctx.device)
            self._pending = D.all_reduce_sum_async(self._counts, ctx)
        else:  # a host number: the scale multiplies the loss as a scalar, no device op, no copy
            self._valid = max(1.0, valid_here)

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.wait()
            self._pending = None

    def total_valid(self) -> torch.Tensor | float:
        """Valid elements of the effective batch: a device tensor [1] (several ranks), a float (one)."""
        if self._valid is None:
            self._wait()
            self._valid = self._counts[:1].clamp_min(1.0)
        return self._valid

    def scale(self) -> torch.Tensor | float:
        """world_size / total valid elements: what each rank's loss sum is multiplied by (DDP averages);
        computed once per step, not per micro-batch."""
        if self._scale is None:
            self._scale = self.ctx.world_size / self.total_valid()
        return self._scale

    def valid_per_rank(self) -> torch.Tensor | float:
        """This step's share of the logged loss's denominator: total valid elements / world size."""
        total = self.total_valid()
        return total.squeeze() / self.ctx.world_size if torch.is_tensor(total) else total

    def stop_any(self) -> bool:
        if not self.ctx.distributed:
            return self._stop
        self._wait()
        return bool(self._counts[1].item() > 0)


def accumulate(parts: RunParts, micro_batches: list[dict], stop_requested: bool) -> tuple[bool, StepTotals,
                                                                                          torch.Tensor]:
    """Forward/backward every micro-batch; (any rank out of memory, the step's totals, this rank's loss sum)."""
    ctx, strategy = parts.ctx, parts.strategy
    totals = StepTotals(ctx, float(sum(valid_elements(mb) for mb in micro_batches)), stop_requested)
    catch_oom = parts.cfg.memory_optimization.dynamic_batch_size
    watch = parts.guard.watch.saw
    oom = False
    step_loss: torch.Tensor | None = None
    for i, micro_batch in enumerate(parts.device_copies.ahead(micro_batches)):
        try:
            with strategy.sync(parts.model, enabled=i == len(micro_batches) - 1), parts.autocast():
                out = parts.model(parts.data.transform(micro_batch, ctx.device, train=True))
                watch(out)
                loss = out["loss_sum"].float() * totals.scale()
            strategy.backward(parts.model, loss, parts.objects.scaler)
            term = out["loss_sum"].detach().float()
            step_loss = term if step_loss is None else step_loss + term
        except torch.OutOfMemoryError:
            if not catch_oom:
                raise
            oom = True
            break
    totals.total_valid()  # the count's all-reduce is complete before any other collective starts
    if catch_oom and ctx.distributed:  # every rank backs off together
        oom = bool(D.all_reduce_sum(torch.tensor([float(oom)], device=ctx.device), ctx).item() > 0)
    return oom, totals, step_loss if step_loss is not None else torch.zeros((), device=ctx.device)


def _forward_backward(parts: RunParts, state: TrainerState, step: int, micro_batches: list[dict],
                      stop_requested: bool) -> tuple[StepTotals, torch.Tensor]:
    """All micro-batches of the step; after an out-of-memory error the same samples again in halves."""
    while True:
        oom, totals, loss_sum = accumulate(parts, micro_batches, stop_requested)
        if not oom:
            return totals, loss_sum
        parts.optimizer.zero_grad(set_to_none=True)
        batches = parts.batches
        new_micro, new_acc, message = halve(batches.micro, batches.accumulation, step)
        parts.log.warning(message)
        if parts.ctx.device.type == "cuda":
            torch.cuda.empty_cache()
        if parts.cfg.training.compile:
            parts.log.info(f"torch.compile: the compiled blocks recompile for micro-batch {new_micro} (expected "
                           "after a back-off; later steps reuse it)")
        micro_batches = resplit(micro_batches, new_micro)
        batches.reset(new_micro, new_acc, batches.position)
        state.micro_batch_size, state.gradient_accumulation_steps = new_micro, new_acc


def run_step(parts: RunParts, state: TrainerState, step: int, stop_requested: bool) -> StepResult:
    tc, timers = parts.cfg.training, parts.timers
    parts.clock.advance(step)
    start, graphs = time.perf_counter(), graphs_compiled() if tc.compile else 0
    with timers.phase("data_wait"):
        micro_batches = parts.batches.next_step()
    lr = learning_rate_at(step, parts.plan.learning_rate, tc.lr_scheduler, tc.warmup_steps, tc.max_steps, tc.min_lr)
    apply_learning_rate(parts.optimizer, lr)
    with timers.phase("forward_backward"):
        totals, loss_sum = _forward_backward(parts, state, step, micro_batches, stop_requested)
    o = parts.objects
    with timers.phase("optimizer"):
        grad_norm, finite = parts.strategy.step(parts.trainable, o.optimizer, o.scaler, tc.max_grad_norm)
        if finite:
            state.nonfinite_in_a_row = 0
            if o.ema is not None:
                o.ema.update(parts.policy, step)
        else:
            latest = parts.checkpointer.store.pointer("latest")
            parts.guard.skip(step, state, o.optimizer, o.scaler, str(latest) if latest else None)
    state.step, state.samples_seen = step, parts.batches.position
    norm = grad_norm.detach().float() if finite else torch.zeros_like(loss_sum)
    compiled = graphs_compiled() - graphs if tc.compile else 0
    return StepResult(lr, loss_sum, totals.valid_per_rank(), norm, totals.stop_any(), time.perf_counter() - start,
                      compiled)
