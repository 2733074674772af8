"""Hang watchdog: when no optimizer step finished within `training.hang_timeout_s`, log the stack of
every thread (then again every further timeout while still stuck).

A hung collective, a stuck data worker or a dead file system otherwise leaves a silent process that
burns its allocation; the stack dump says where it waits. The watchdog is a daemon thread that reads
the step counter the loop already keeps (`FaultInjector.current_step`) through a weak reference, so it
costs the loop nothing and ends by itself if the loop's objects go away without `stop()` (an exception).
Limit: a C call that holds the GIL forever also stops this thread; `py-spy dump --pid P` still works then.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
import weakref


def stack_dump() -> str:
    """Every live thread's Python stack, most recent call last, named like `threading` names it."""
    names = {t.ident: t.name for t in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        parts.append(f"--- thread {names.get(ident, '?')} ({ident}) ---\n" + "".join(traceback.format_stack(frame)))
    return "\n".join(parts)


class Watchdog:
    def __init__(self, timeout_s: float, clock: object, log: logging.Logger, attr: str = "current_step") -> None:
        self.timeout_s = float(timeout_s)
        self._clock = weakref.ref(clock)
        self._attr = attr
        self._log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="atlas-watchdog", daemon=True)
        self.dumps = 0

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _progress(self) -> int | None:
        clock = self._clock()
        return None if clock is None else getattr(clock, self._attr)

    def _run(self) -> None:
        poll = min(1.0, self.timeout_s / 10)
        last, since = self._progress(), time.monotonic()
        while not self._stop.wait(poll):
            now = self._progress()
            if now is None:
                return
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= self.timeout_s:
                self.dumps += 1
                self._log.error(
                    f"watchdog: no optimizer step finished for {time.monotonic() - since:.0f} s "
                    f"(training.hang_timeout_s={self.timeout_s:g}; current step {now}); stacks of all threads:\n"
                    + stack_dump()
                )
                for handler in self._log.handlers:
                    handler.flush()
                since = time.monotonic()

