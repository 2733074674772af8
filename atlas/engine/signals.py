"""Graceful stop on SIGTERM/SIGINT (SLURM preemption, Ctrl-C): finish the step, checkpoint, exit 0.

The first signal only sets a flag that the loop reads once per optimizer step (riding on the step's
existing all-reduce, so every rank agrees on the same stopping step). A second SIGINT exits at once.
`ATLAS_STOP_AT_STEP=S` requests the same stop during step S, for tests and scripted preemption.
"""

from __future__ import annotations

import os
import signal


class StopRequest:
    def __init__(self) -> None:
        self.reason: str | None = None
        self._stop_at = int(os.environ.get("ATLAS_STOP_AT_STEP", "0") or 0)
        self._previous: dict[int, object] = {}

    def install(self) -> StopRequest:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals to the host program
                pass
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt("second Ctrl-C: stopping at once")
        self.reason = signal.Signals(signum).name

    def requested(self, step: int) -> bool:
        if self._stop_at and step >= self._stop_at and self.reason is None:
            self.reason = f"ATLAS_STOP_AT_STEP={self._stop_at}"
        return self.reason is not None
