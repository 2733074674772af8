"""The base class every config section derives from.

Sections live beside the component they configure (LeRobot style): `atlas/data/config.py`,
`atlas/models/config.py`, `atlas/sim/config.py`; `atlas/config/schema.py` composes them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

# Integers beyond this are never a setting, only a typo or an attack (2**70 overflows torch and numpy
# seeds, counters and shapes deep inside the run); floats must be finite (`allow_inf_nan=False`).
MAX_INT = 2**53


def _too_large(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) > MAX_INT else None
    if isinstance(value, (list, tuple)):
        return next((v for v in map(_too_large, value) if v is not None), None)
    if isinstance(value, dict):
        return _too_large(list(value.values()))
    return None


class Section(BaseModel):
    """Unknown keys are errors (with did-you-mean, see `atlas.config.errors`), so typos never pass silently;
    NaN/inf and integers past 2**53 are errors too, so a non-finite hyperparameter never reaches the loop."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded_integers(cls, value):
        huge = _too_large(value)
        if huge is not None:
            raise ValueError(f"{huge} is out of range (at most 2**53 in size)")
        return value
