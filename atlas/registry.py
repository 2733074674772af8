"""The one helper behind every name registry (formats, policies, backbones, encoders, heads): the
names users write in YAML map to builders through a `@register(name)` decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def registrar(table: dict) -> Callable[[str], Callable[[T], T]]:
    """A decorator factory that files the decorated object in `table` under `name` and returns it."""

    def register(name: str) -> Callable[[T], T]:
        def wrap(obj: T) -> T:
            table[name] = obj
            return obj

        return wrap

    return register
