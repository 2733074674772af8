"""Config: schema, layered loading, clear errors.

Names are resolved lazily: component configs (`atlas/data/config.py` ...) import `atlas.config.base`,
and the schema imports them, so an eager import here would be circular when a component config is the
first thing a program imports.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AtlasConfig": "atlas.config.schema",
    "ConfigError": "atlas.config.errors",
    "dump_config": "atlas.config.loader",
    "load_config": "atlas.config.loader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'atlas.config' has no attribute {name!r}")
