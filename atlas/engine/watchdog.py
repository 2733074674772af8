"""Hang watchdog: when no optimizer step finished within `training.hang_timeout_s`, log the stack of
every thread (then again every further timeout while still stuck).

A hung collective, a stuck data worker or a dead file system otherwise leaves a silent process that
burns its allocation; the stack dump says where it waits. The watchdog is a daemon thread that reads
the loop's step clock (`atlas/engine/clock.py`) through a weak reference, so it
costs the loop nothing; it also ends by itself once the function that started it is no longer running
(the loop raised before `stop()`), without keeping that function's objects alive.
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
    def __init__(self, timeout_s: float, clock: object, log: logging.Logger, attr: str = "step") -> None:
        self.timeout_s = float(timeout_s)
        self._clock = weakref.ref(clock)
        self._attr = attr
        self._log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="atlas-watchdog", daemon=True)
        self.dumps = 0

    def start(self) -> Watchdog:
        owner = sys._getframe(1)  # the loop's frame: watch only while it runs
        self._owner = (threading.get_ident(), id(owner), owner.f_code)
        self._thread.start()
        return self

    def _owner_running(self) -> bool:
        thread, frame_id, code = self._owner
        frame = sys._current_frames().get(thread)
        while frame is not None:
            if id(frame) == frame_id and frame.f_code is code:
                return True
            frame = frame.f_back
        return False

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
            if now is None or not self._owner_running():
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

