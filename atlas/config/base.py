"""The base class every config section derives from.

Sections live beside the component they configure (LeRobot style): `atlas/data/config.py`,
`atlas/models/config.py`, `atlas/sim/config.py`, `atlas/engine/config.py`; `atlas/config/schema.py`
composes them.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

# YAML 1.1 (and code that builds configs from parsed flags) turns these words into booleans; a field whose
# valid values are words gets the word back (see atlas/config/yaml_words.py for files and overrides).
_WORDS_FOR = {False: ("no", "off", "false", "none"), True: ("yes", "on", "true")}


def _word_choices(annotation: Any) -> tuple[str, ...]:
    """The string values of a Literal annotation (also inside Optional/Union), else ()."""
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(a for a in typing.get_args(annotation) if isinstance(a, str))
    return tuple(w for arg in typing.get_args(annotation) for w in _word_choices(arg))


class Section(BaseModel):
    """Unknown keys are errors (with did-you-mean, see `atlas.config.errors`), so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

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
