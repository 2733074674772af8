"""Simulators by name (`eval.env`, `atlas eval --env`): each maps a task name to an environment with
`reset(seed, episode) -> state`, `step(action) -> StepResult`, `render(camera, size)`, `max_steps` (its own
step limit), `instruction`, and optionally `data_task` (the task name a training dataset uses for it)."""

from __future__ import annotations

from collections.abc import Callable

from atlas.config.errors import ConfigError

ENVS: dict[str, Callable[[str], object]] = {}
TASK_PARSERS: dict[str, Callable[[str | list[str]], list[str]]] = {}


def register_env(name: str, parse_tasks: Callable[[str | list[str]], list[str]]) -> Callable:
    def wrap(factory: Callable[[str], object]) -> Callable[[str], object]:
        ENVS[name] = factory
        TASK_PARSERS[name] = parse_tasks
        return factory

    return wrap


def _import_builtin() -> None:
    import atlas.sim.libero_env  # noqa: F401
    import atlas.sim.metaworld_registration  # noqa: F401


def check_env(name: str) -> None:
    """Raise a ConfigError naming what to install when a simulator is unknown or missing."""
    _import_builtin()
    if name not in ENVS:
        raise ConfigError(f"--env: unknown environment {name!r}; valid: {', '.join(sorted(ENVS))}")
    if name == "libero":
        from atlas.sim.libero_env import require_libero

        require_libero()


def make_env(name: str, task: str):
    check_env(name)
    return ENVS[name](task)


def parse_env_tasks(name: str, tasks: str | list[str]) -> list[str]:
    check_env(name)
    return TASK_PARSERS[name](tasks)
