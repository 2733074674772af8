"""The training log line: losses, LR, grad norm, throughput and phase times since the last one.

The loss is accumulated on the device and read once per log window (the only host sync of the loss).
"""

from __future__ import annotations

import time

import torch

from atlas.engine import distributed as D
from atlas.engine.metrics import gpu_memory_peaks
from atlas.loop.parts import RunParts
from atlas.loop.step import StepResult

RANK_PHASES = ("data_wait", "forward_backward", "step")


def rank_slots(times: dict[str, float], ctx: D.DistContext) -> torch.Tensor:
    """This rank's window phase times in its row of a (world x phases) block, zeros elsewhere: summed over
    ranks (in the window's one all-reduce) the block holds every rank's times."""
    block = torch.zeros(ctx.world_size, len(RANK_PHASES))
    block[ctx.rank] = torch.tensor([times[f"time/{phase}_ms"] for phase in RANK_PHASES])
    return block.flatten()


def per_rank_times(ranks: list[list[float]]) -> dict[str, float]:
    """Every rank's `time/<phase>_ms/rank<R>` for the window and `time/rank_spread_ms` (the largest gap
    between the slowest and the fastest rank in any of those phases), from each rank's row.

    Only rank 0 writes metrics.jsonl, and ranks wait for each other in the step's collectives, so a slow
    rank is only visible in how its time splits: its own input wait grows while the others wait for it
    inside forward/backward (`atlas doctor RUN_DIR` reads these)."""
    out = {f"time/{phase}_ms/rank{rank}": round(values[i], 3) for rank, values in enumerate(ranks)
           for i, phase in enumerate(RANK_PHASES)}
    out["time/rank_spread_ms"] = round(max(max(v[i] for v in ranks) - min(v[i] for v in ranks)
                                           for i in range(len(RANK_PHASES))), 3)
    return out


class MetricWindow:
    def __init__(self, parts: RunParts, bar=None) -> None:
        self.parts, self.bar = parts, bar
        self.interval = parts.cfg.training.log_interval
        self.last_loss = float("nan")
        self._reset()

    def _reset(self) -> None:
        # each step's loss sum, valid count (a host number in one process) and grad norm: reduced once per
        # window, so a step adds no device op of its own
        self._losses: list[torch.Tensor] = []
        self._valid: list[torch.Tensor | float] = []
        self._norms: list[torch.Tensor] = []
        self.steps, self.start = 0, time.perf_counter()
        self.compile_steps, self.compile_s = 0, 0.0  # steps that compiled: kept out of samples_per_s

    def add(self, result: StepResult, step: int) -> None:
        if result.compiled_graphs:
            self.compile_steps += 1
            self.compile_s += result.seconds
            self.parts.timers.record("compile", result.seconds)
            self.parts.log.info(f"torch.compile: {result.compiled_graphs} graph(s) compiled during step {step} "
                                f"({result.seconds:.1f} s, excluded from samples_per_s)")
        self._losses.append(result.loss_sum)
        self._valid.append(result.valid)
        self._norms.append(result.grad_norm)
        self.steps += 1
        if self.bar is not None:
            self.bar.update(1)

    def _window_sums(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss sum, valid elements, grad-norm sum) of the window's steps. A step whose loss is NaN/inf is
        left out of both the loss and its denominator, so metrics.jsonl never holds NaN."""
        device = self.parts.ctx.device
        if not self._losses:
            return tuple(torch.zeros((), device=device) for _ in range(3))
        losses = torch.stack(self._losses).float()
        valid = (torch.stack(self._valid) if torch.is_tensor(self._valid[0])
                 else torch.tensor(self._valid, dtype=torch.float32, device=device))
        finite = torch.isfinite(losses)
        return (torch.where(finite, losses, 0.0).sum(), (valid * finite).sum(),
                torch.stack(self._norms).float().sum())

    def due(self, step: int, last: bool) -> bool:
        return step % self.interval == 0 or last

    def flush(self, step: int, lr: float) -> float:
        """Write the window's metrics line; returns its loss."""
        parts, ctx = self.parts, self.parts.ctx
        times = parts.timers.window_record(self.steps)
        # one all-reduce per window: the loss sum, the valid count and (several ranks) every rank's phase times
        loss_sum, valid, grad_norm = self._window_sums()
        packed = [torch.stack([loss_sum, valid])]
        if ctx.distributed:
            packed.append(rank_slots(times, ctx).to(ctx.device))
        totals = D.all_reduce_sum(torch.cat(packed), ctx)
        elapsed = time.perf_counter() - self.start
        values = torch.cat([(totals[0] / totals[1].clamp_min(1.0)).reshape(1), totals[2:]]).tolist()  # one sync
        loss = values[0]
        effective = parts.plan.effective_batch_size
        counted = self.steps - self.compile_steps
        record = {
            "loss": loss,
            "lr": lr,
            "grad_norm": (grad_norm / max(1, self.steps)).item(),
            "epoch": step * effective / parts.stream.num_samples,
            **parts.stream.mixture_fractions(step * effective),  # mixture/<name> (data.mixture only)
            **times,
            **gpu_memory_peaks(parts.ctx.device),
        }
        if counted:  # a window of compiling steps only has no throughput to report
            record["samples_per_s"] = counted * effective / max(elapsed - self.compile_s, 1e-9)
            basis = parts.plan.mfu_basis  # CUDA with a known peak: the model FLOPs share of it, per GPU
            if basis:
                achieved = record["samples_per_s"] * basis["train_flops_per_sample"] / parts.ctx.world_size
                record["mfu"] = round(achieved / basis["peak_flops_per_s"], 4)
        if ctx.distributed:
            phases = len(RANK_PHASES)
            record.update(per_rank_times([values[1 + r * phases: 1 + (r + 1) * phases] for r in range(ctx.world_size)]))
        for group in parts.optimizer.param_groups:
            record[f"lr/{group['name']}"] = group["lr"]
        parts.metrics.log(record, step)
        if self.bar is not None:
            # shown at the bar's next redraw (at most one a second), not redrawn here each window
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", sps=f"{record.get('samples_per_s', 0):.0f}",
                                 refresh=False)
        self.last_loss = loss
        self._reset()
        return loss
