"""The base class every config section derives from.

Sections live beside the component they configure (LeRobot style): `atlas/data/config.py`,
`atlas/models/config.py`, `atlas/sim/config.py`, `atlas/engine/config.py`; `atlas/config/schema.py`
composes them.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

# YAML 1.1 (and code that builds configs from parsed flags) turns these words into booleans; a field whose
# valid values are words gets the word back (see atlas/config/yaml_loader.py for files and overrides).
_WORDS_FOR = {False: ("no", "off", "false", "none"), True: ("yes", "on", "true")}

# Integers beyond this are never a setting, only a typo or an attack (2**70 overflows torch and numpy
# seeds, counters and shapes deep inside the run); floats must be finite (`allow_inf_nan=False`).
MAX_INT = 2**53


def switch_value(value: Any) -> bool | None:
    """A boolean written as a boolean or as a YAML 1.1 word (`on`, `off`, `yes`, `no`, any case), else None:
    how a section that is also a switch (`data.image_aug: off`, `model.lora: on`) reads its value."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return next((b for b, words in _WORDS_FOR.items() if value.lower() in words + (("null",) if not b else ())), None)
    return None


def _word_choices(annotation: Any) -> tuple[str, ...]:
    """The string values of a Literal annotation (also inside Optional/Union), else ()."""
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(a for a in typing.get_args(annotation) if isinstance(a, str))
    return tuple(w for arg in typing.get_args(annotation) for w in _word_choices(arg))


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

    @model_validator(mode="before")
    @classmethod
    def _booleans_as_words(cls, data: Any) -> Any:
        """`mixed_precision: False` (YAML 1.1's `no`), `off` or `false` -> "no" for fields whose values are words
        (the same for True/`on`/`yes`/`true`), whichever spelling the field's choices use."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name)
            if field is None or not isinstance(value, (bool, str)):
                continue
            choices = _word_choices(field.annotation)
            if isinstance(value, str):
                if value in choices:
                    continue
                value = next((b for b, words in _WORDS_FOR.items() if value.lower() in words), None)
                if value is None:
                    continue
            word = next((w for w in _WORDS_FOR[value] if w in choices), None)
            if word is not None:
                out[name] = word
        return out

    @field_validator("*", mode="after")
    @classmethod
    def _bounded_integers(cls, value):
        huge = _too_large(value)
        if huge is not None:
            raise ValueError(f"{huge} is out of range (at most 2**53 in size)")
        return value
