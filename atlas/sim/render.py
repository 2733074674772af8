"""Offscreen camera images straight from `mujoco.Renderer`.

gymnasium's `render()` is ~15x slower; shadows, reflections and multisampling are switched off because
at 64-224 px they cost time and add nothing a policy can use. Meta-World's corner cameras are mounted
rolled by 180 degrees, so frames are rotated (rows *and* columns flipped) to come out upright.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import weakref

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first `import mujoco`

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

# cameras mounted upside down in Meta-World's scene (verified on rendered frames: table below, sky above)
ROLLED_CAMERAS = frozenset({"corner", "corner2", "corner3", "corner4"})


def simplify_visuals(model: mujoco.MjModel) -> None:
    """Cheaper software rendering: no multisampling, shadows or reflections."""
    model.vis.quality.offsamples = 0
    model.light_castshadow[:] = 0
    model.mat_reflectance[:] = 0


_LIVE: weakref.WeakSet = weakref.WeakSet()
_EXIT_HOOK = False


def _close_live() -> None:
    for renderer in list(_LIVE):
        renderer.close()


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM until the block is done, then hand them to the handlers that were in place.

    A Ctrl-C inside `mujoco.Renderer.__init__` leaves a half-built object whose `__del__` prints a traceback
    at exit. Python handlers run in the main thread only, so swapping them (not a thread's signal mask:
    the kernel may deliver to any other thread) defers the signal wherever it lands."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    old = {sig: signal.signal(sig, lambda number, frame: pending.append(number)) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in pending[:1]:
            handler = old[sig]
            if callable(handler):
                handler(sig, None)  # default_int_handler raises KeyboardInterrupt here, after the block
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), sig)


class CameraRenderer:
    """Renders named cameras of one model at a fixed size; frames uint8 [H, W, 3], upright."""

    def __init__(self, model: mujoco.MjModel, height: int, width: int) -> None:
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
        with _signals_deferred():  # Ctrl-C inside Renderer.__init__ leaves an object whose __del__ raises at exit
            self.renderer = mujoco.Renderer(model, height, width)
        self.size = (height, width)
        _LIVE.add(self)
        global _EXIT_HOOK
        if not _EXIT_HOOK:
            # registered after mujoco's EGL display, so it runs before EGL is terminated at exit
            atexit.register(_close_live)
            _EXIT_HOOK = True

    def render(self, data: mujoco.MjData, camera: str) -> np.ndarray:
        self.renderer.update_scene(data, camera=camera)
        frame = self.renderer.render()
        if camera in ROLLED_CAMERAS:
            frame = frame[::-1, ::-1]
        return np.ascontiguousarray(frame)

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
