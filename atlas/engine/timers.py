"""Per-phase wall time of the loop, written into metrics.jsonl with each training log line.

Phases: `data_wait` (waiting for the next micro-batches), `forward_backward`, `optimizer` (clip, step,
EMA), `checkpoint`, `validation`, `evaluation`; `step` is the whole optimizer step (data wait included).
Each is reported as milliseconds per optimizer step over the log window (`time/<phase>_ms`), so a starved
accelerator (data wait), a slow save or a too-frequent validation shows up in the run's own record and
benchmarks read it instead of patching the loop. On CUDA the loop syncs once per step (the grad-norm
finiteness check), so `time/step_ms` is exact; the split between forward/backward and the optimizer is
not (kernels run asynchronously between syncs).
"""

from __future__ import annotations

import time
from collections import defaultdict

PHASES = ("data_wait", "forward_backward", "optimizer", "checkpoint", "validation", "evaluation", "step")


class PhaseTimers:
    def __init__(self) -> None:
        self._seconds: dict[str, float] = defaultdict(float)
        self.totals: dict[str, float] = defaultdict(float)  # whole run, for the summary

    def phase(self, name: str) -> _Phase:
        """`with timers.phase("optimizer"): ...` adds the block's wall time to that phase."""
        return _Phase(self, name)

    def record(self, name: str, seconds: float) -> None:
        self._seconds[name] += seconds
        self.totals[name] += seconds

    def window_record(self, steps: int) -> dict[str, float]:
        """`time/<phase>_ms` per optimizer step since the last call, then start a new window."""
        record = {f"time/{name}_ms": round(1000.0 * self._seconds.get(name, 0.0) / max(1, steps), 3)
                  for name in PHASES}
        self._seconds.clear()
        return record


class _Phase:
    """The timing block of one phase: a plain class, not a generator context manager (the loop enters four
    a step, and contextlib's costs several times more per use)."""

    __slots__ = ("_timers", "_name", "_start")

    def __init__(self, timers: PhaseTimers, name: str) -> None:
        self._timers, self._name, self._start = timers, name, 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self._timers.record(self._name, time.perf_counter() - self._start)
