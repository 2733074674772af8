"""A command no launcher recognises: only what any command shows is judged (launcher, processes,
environment lines); its flags are listed, none is read with another tool's meaning."""

from __future__ import annotations

from typing import TYPE_CHECKING

from atlas.planning.launchers.base import Launcher, Reading
from atlas.planning.launchers.common import launcher_world

if TYPE_CHECKING:
    from atlas.planning.launch import LaunchCommand


class UnknownScript(Launcher):
    key = "unknown"
    label = "unknown script"

    def recognises(self, script: str, tokens: list[str]) -> bool:
        return False

    def read(self, command: LaunchCommand, gpus: int | None = None) -> Reading:
        world, origin = launcher_world(command, gpus)
        return Reading({}, {}, world, origin, unknown_flags=[f"--{k}" for k in command.args],
                       model_origin=f"{command.script or 'the command'}: tool not recognised, model unknown")


UNKNOWN = UnknownScript()
