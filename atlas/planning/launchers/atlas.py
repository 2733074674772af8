"""Atlas itself: `torchrun ... -m atlas.train --config FILE` (or atlas/train.py). The config file is read
the way `atlas doctor FILE.yaml` reads it (atlas/planning/setup.py), with the launcher's processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from atlas.planning.launchers.base import Launcher, Reading, register_launcher
from atlas.planning.launchers.common import launcher_world

if TYPE_CHECKING:
    from atlas.planning.launch import LaunchCommand


@register_launcher
class AtlasTrain(Launcher):
    key = "atlas"
    label = "Atlas"

    def recognises(self, script: str, tokens: list[str]) -> bool:
        return script in ("-m atlas.train",) or script.endswith("atlas/train.py")

    def read(self, command: LaunchCommand, gpus: int | None = None) -> Reading:
        world, origin = launcher_world(command, gpus)
        config = command.args.get("config")
        return Reading({"config": config if isinstance(config, str) else None}, {"config": "--config"}, world, origin,
                       batch_note="data.batch_size is per device")
