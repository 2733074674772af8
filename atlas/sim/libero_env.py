"""LIBERO adapter entry: LIBERO is not a dependency of Atlas, so this only checks for it and says how
to get it. With the package present, an adapter would wrap `libero.libero.envs.OffScreenRenderEnv`."""

from __future__ import annotations

from atlas.config.errors import ConfigError
from atlas.sim.envs import register_env

INSTALL_HINT = (
    "--env libero needs the `libero` package, which is not installed. Install LIBERO from "
    "https://github.com/Lifelong-Robot-Learning/LIBERO (pip install -e . in its checkout, plus robosuite), "
    "or evaluate with --env metaworld."
)


def require_libero() -> None:
    try:
        import libero.libero  # noqa: F401
    except ImportError as err:
        raise ConfigError(INSTALL_HINT) from err
    raise ConfigError("--env libero: the LIBERO adapter is not implemented in this version of Atlas; use --env metaworld")


def _parse_libero_tasks(tasks: str | list[str]) -> list[str]:
    names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    return [t.strip() for t in names if t.strip()]


@register_env("libero", _parse_libero_tasks)
def make_libero(task: str):
    require_libero()
