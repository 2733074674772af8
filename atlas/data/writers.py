"""Dataset writers by name (`atlas collect --format`, `atlas convert --to`): each takes episodes with `add`
(state, actions, images {camera: uint8 [T, H, W, 3]}, task, instruction, ...) and finishes with `close`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from atlas.config.errors import ConfigError
from atlas.registry import registrar


class EpisodeWriter(Protocol):
    def add(self, episode: dict) -> str: ...

    def close(self, collection: dict | None = None) -> None: ...


WriterBuilder = Callable[..., EpisodeWriter]
WRITERS: dict[str, WriterBuilder] = {}
register_writer = registrar(WRITERS)


@register_writer("robomimic")
def _robomimic(path: str, env_args: dict | None = None, overwrite: bool = True, append: bool = False,
               **_: Any) -> EpisodeWriter:
    """One HDF5 file in the robomimic layout (`data/demo_<i>/...`); `append` adds to an existing one."""
    from atlas.sim.robomimic_writer import RobomimicWriter

    return RobomimicWriter(path, env_args or {}, append=append)


@register_writer("lerobot")
def _lerobot(path: str, env_args: dict | None = None, overwrite: bool = False, fps: int | None = None,
             codec: str | None = None, version: str = "v3.0", **_: Any) -> EpisodeWriter:
    """A LeRobot dataset folder (v3.0, or the v2.1 layout)."""
    from atlas.data.lerobot_writer import LeRobotWriter

    return LeRobotWriter(path, fps=fps or 10, codec=codec or "libsvtav1", version=version, overwrite=overwrite,
                         env_args=env_args, robot_type=str((env_args or {}).get("type") or "atlas"))


def open_writer(fmt: str, path: str, **options: Any) -> EpisodeWriter:
    if fmt not in WRITERS:
        raise ConfigError(f"output format {fmt!r} unknown; valid: {', '.join(sorted(WRITERS))}")
    return WRITERS[fmt](path, **options)
