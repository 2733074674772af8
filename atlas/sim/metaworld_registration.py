"""Registers Meta-World under the name `metaworld` (kept apart so the registry imports stay light)."""

from __future__ import annotations

from atlas.sim.envs import register_env
from atlas.sim.tasks import parse_tasks


@register_env("metaworld", parse_tasks)
def make_metaworld(task: str):
    from atlas.sim.metaworld_env import MetaWorldEnv

    return MetaWorldEnv(task)
