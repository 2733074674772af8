"""Launch-command readers, one module per tool, in a registry keyed by a recogniser.

`recognise(script, tokens)` returns the first launcher whose recogniser accepts the command (registration
order below: the more specific first), else the unknown reader, which judges only what any command shows
(launcher, processes, environment lines) and never reads a script as another tool's.
"""

from __future__ import annotations

from atlas.planning.launchers import atlas as _atlas  # noqa: F401 - registration order matters
from atlas.planning.launchers import hf_trainer as _hf_trainer  # noqa: F401
from atlas.planning.launchers import lerobot as _lerobot  # noqa: F401
from atlas.planning.launchers import openpi as _openpi  # noqa: F401
from atlas.planning.launchers import openvla_oft as _openvla_oft  # noqa: F401
from atlas.planning.launchers import rdt as _rdt  # noqa: F401
from atlas.planning.launchers.base import LAUNCHERS, Launcher, Reading, Rule
from atlas.planning.launchers.unknown import UNKNOWN

__all__ = ["LAUNCHERS", "Launcher", "Reading", "Rule", "UNKNOWN", "entry_points", "get_launcher", "recognise"]


def recognise(script: str, tokens: list[str]) -> Launcher:
    """The tool this script (with its raw argument tokens) runs."""
    for launcher in LAUNCHERS:
        if launcher.recognises(script, tokens):
            return launcher
    return UNKNOWN


def get_launcher(key: str) -> Launcher:
    return next((launcher for launcher in LAUNCHERS if launcher.key == key), UNKNOWN)


def entry_points() -> set[str]:
    """Console commands that are a tool by themselves (`lerobot-train ...` with no launcher before it)."""
    return {name for launcher in LAUNCHERS for name in launcher.entry_points}
