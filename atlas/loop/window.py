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


class MetricWindow:
    def __init__(self, parts: RunParts, bar=None) -> None:
        self.parts, self.bar = parts, bar
        self.interval = parts.cfg.training.log_interval
        self.last_loss = float("nan")
        self._reset()

    def _reset(self) -> None:
        device = self.parts.ctx.device
        self.loss_sum = torch.zeros((), device=device)
        self.valid = torch.zeros((), device=device)
        self.grad_norm = torch.zeros((), device=device)
        self.steps, self.start = 0, time.perf_counter()
        self.compile_steps, self.compile_s = 0, 0.0  # steps that compiled: kept out of samples_per_s

    def add(self, result: StepResult, step: int) -> None:
        if result.compiled_graphs:
            self.compile_steps += 1
            self.compile_s += result.seconds
            self.parts.timers.record("compile", result.seconds)
            self.parts.log.info(f"torch.compile: {result.compiled_graphs} graph(s) compiled during step {step} "
                                f"({result.seconds:.1f} s, excluded from samples_per_s)")
        self.loss_sum += result.loss_sum
        self.valid += result.valid
        self.grad_norm += result.grad_norm
        self.steps += 1
        if self.bar is not None:
            self.bar.update(1)

    def due(self, step: int, last: bool) -> bool:
        return step % self.interval == 0 or last

    def flush(self, step: int, lr: float) -> float:
        """Write the window's metrics line; returns its loss."""
        parts = self.parts
        totals = torch.stack([self.loss_sum, self.valid]).float()
        D.all_reduce_sum(totals, parts.ctx)
        elapsed = time.perf_counter() - self.start
        loss = (totals[0] / totals[1].clamp_min(1.0)).item()
        effective = parts.plan.effective_batch_size
        counted = self.steps - self.compile_steps
        record = {
            "loss": loss,
            "lr": lr,
            "grad_norm": (self.grad_norm / max(1, self.steps)).item(),
            "epoch": step * effective / parts.stream.num_samples,
            **parts.timers.window_record(self.steps),
            **gpu_memory_peaks(parts.ctx.device),
        }
        if counted:  # a window of compiling steps only has no throughput to report
            record["samples_per_s"] = counted * effective / max(elapsed - self.compile_s, 1e-9)
        for group in parts.optimizer.param_groups:
            record[f"lr/{group['name']}"] = group["lr"]
        parts.metrics.log(record, step)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", sps=f"{record.get('samples_per_s', 0):.0f}")
        self.last_loss = loss
        self._reset()
        return loss
