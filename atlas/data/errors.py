"""The one error type of the data pipeline, so users see which file, episode and key is wrong
instead of an h5py or KeyError traceback."""

from __future__ import annotations

from atlas.errors import AtlasError


class DataError(AtlasError, ValueError):
    """A dataset problem described in the user's words (file, episode, key, what was expected)."""


def where(path: object, episode: str | None = None, key: str | None = None) -> str:
    """`file.hdf5, episode demo_3, key obs/state` — the prefix every data error starts with."""
    parts = [str(path)]
    if episode is not None:
        parts.append(f"episode {episode}")
    if key is not None:
        parts.append(f"key {key}")
    return ", ".join(parts)
