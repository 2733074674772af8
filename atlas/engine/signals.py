"""Graceful stop on SIGTERM/SIGINT (SLURM preemption, Ctrl-C): finish the step, checkpoint, exit 0.

The first signal only sets a flag that the loop reads once per optimizer step (riding on the step's
existing all-reduce, so every rank agrees on the same stopping step). A second Ctrl-C exits at once:
SIGINT goes back to the operating system's default action, so it works even while the main thread is
blocked inside a C call (a collective, a file read) where no Python handler could run.

Under torchrun the launcher forwards the signal it receives to every worker, so a worker in the
terminal's process group sees one Ctrl-C twice; a repeat within `DUPLICATE_S` is taken for that copy.
Further SIGTERMs are ignored (schedulers and launchers repeat them until the grace period ends).
`ATLAS_STOP_AT_STEP=S` requests the same stop during step S, for tests and scripted preemption.
"""

from __future__ import annotations

import os
import signal
import sys
import time

DUPLICATE_S = 2.0


def _under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ


class StopRequest:
    def __init__(self) -> None:
        self.reason: str | None = None
        self._stop_at = int(os.environ.get("ATLAS_STOP_AT_STEP", "0") or 0)
        self._previous: dict[int, object] = {}
        self._first_at = 0.0

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
        name = signal.Signals(signum).name
        if self.reason is None:
            self.reason, self._first_at = name, time.monotonic()
            print(f"[atlas] {name}: finishing the current optimizer step, then checkpoint and exit "
                  "(Ctrl-C again to exit at once)", file=sys.stderr, flush=True)
            if not _under_torchrun():
                signal.signal(signal.SIGINT, signal.SIG_DFL)
            return
        if signum != signal.SIGINT or time.monotonic() - self._first_at < DUPLICATE_S:
            return  # a repeated SIGTERM, or torchrun's forwarded copy of the same Ctrl-C
        print("[atlas] second Ctrl-C: exiting at once, without a checkpoint", file=sys.stderr, flush=True)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)

    def requested(self, step: int) -> bool:
        if self._stop_at and step >= self._stop_at and self.reason is None:
            self.reason = f"ATLAS_STOP_AT_STEP={self._stop_at}"
        return self.reason is not None
