"""What every launcher reading shares: the registry keyed by a recogniser, and the reading it returns.

A launcher (one module per tool) answers three questions about one launch command, in that tool's own
terms: is this command mine (`recognises`), what does the run really get (`read`: per-device and effective
batch, the LR and warmup it really uses, the model it trains, rules that fire), and how would the command
say a different micro-batch / accumulation (`batch_flags`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atlas.planning.launch import LaunchCommand

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Rule:
    """A tool-specific finding: `parameter` in Atlas words; `why` cites the tool's file and line."""

    parameter: str
    yours: str
    status: str
    why: str
    why_zh: str = ""
    recipe: str = "-"


@dataclass
class Reading:
    """One command read by its tool. `values` use Atlas words (micro_batch_size is per device)."""

    values: dict[str, Any]
    origin: dict[str, str]
    world_size: int | None = None  # devices the batch is split over when the tool decides it (openpi JAX)
    world_size_origin: str = ""
    unknown_flags: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    model: str | None = None  # planning preset of the model the command trains (None: no shape for it)
    model_origin: str = ""
    identifiers: dict[str, str] = field(default_factory=dict)  # recipe matching: the tool's own names
    planning: list[str] = field(default_factory=list)  # KEY=VALUE overrides for the planner's config
    batch_note: str = ""  # how this tool's batch flag reads (per device / global)

    def set(self, word: str, value: Any, origin: str) -> None:
        self.values[word] = value
        self.origin[word] = origin


class Launcher:
    """Base class; subclasses set the class attributes and implement `recognises` and `read`."""

    key = ""
    label = ""
    switches: frozenset[str] = frozenset()  # flags that take no value
    entry_points: frozenset[str] = frozenset()  # console commands that are this tool (lerobot-train)
    accumulation: bool = True  # the tool has gradient accumulation
    checks_recipe_flags = True

    def recognises(self, script: str, tokens: list[str]) -> bool:
        raise NotImplementedError

    def read(self, command: LaunchCommand) -> Reading:
        raise NotImplementedError

    def batch_flags(self, micro: int, accumulation: int, world: int) -> dict[str, str]:
        """The flags that give `micro` per device and `accumulation` on `world` devices."""
        return {}


LAUNCHERS: list[Launcher] = []


def register_launcher(cls: type[Launcher]) -> type[Launcher]:
    """File a launcher; recognisers are tried in registration order, the unknown reader last."""
    LAUNCHERS.append(cls())
    return cls


def basename(script: str) -> str:
    return script.rsplit("/", 1)[-1]


def as_int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def as_bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes", "on")


def quoted_precision(mixed_precision: str | None) -> list[str]:
    """A `training.mixed_precision` override the schema accepts: YAML would read a bare `no` as False."""
    if mixed_precision in ("bf16", "fp16"):
        return [f"training.mixed_precision={mixed_precision}"]
    if mixed_precision == "no":
        return ["training.mixed_precision='no'"]
    return []
