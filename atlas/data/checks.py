"""Checks every episode once while a format indexes it, so bad data fails at start-up with the file,
episode and key named (or is dropped and counted with `data.skip_bad_episodes`)."""

from __future__ import annotations

import h5py
import numpy as np

from atlas.data.errors import DataError, where
from atlas.data.hdf5source import KeyLayout, list_keys


def _width(dataset: h5py.Dataset) -> int:
    """Values per step: the product of the dimensions after the first (1 for a [T] column)."""
    return int(np.prod(dataset.shape[1:], dtype=np.int64)) if dataset.ndim > 1 else 1


def width_problem(datasets: dict, layout: KeyLayout, path: str, name: str,
                  widths: dict[str, tuple[int, str]] | None) -> str | None:
    """Actions and state need at least one value per step, and the same number in every episode and file
    (`widths` carries the first episode's sizes across the files of one dataset)."""
    sizes = {"action": _width(datasets["action"]),
             "state": sum(_width(d) for label, d in datasets.items() if label.startswith("state:"))}
    for what, size in sizes.items():
        key = layout.action if what == "action" else ", ".join(layout.state)
        if size == 0:
            return f"{where(path, name, key)}: 0 {what} values per step; a policy needs at least one"
        if widths is None:
            continue
        first = widths.setdefault(what, (size, where(path, name)))
        if first[0] != size:
            return (f"{where(path, name, key)}: {size} {what} values per step, but {first[1]} has {first[0]}; "
                    "every episode of a dataset must have the same state and action size")
    for label, dataset in datasets.items():
        if label.startswith("image/") and dataset.dtype.kind not in "uSOVf" and dataset.dtype != np.uint8:
            return (f"{where(path, name, layout.datasets()[label])}: images of dtype {dataset.dtype}; expected uint8 "
                    "frames (or floats in [0, 1] / [0, 255], or encoded JPEG/PNG bytes)")
    return None


def episode_problem(group: h5py.Group, layout: KeyLayout, path: str, name: str,
                    widths: dict[str, tuple[int, str]] | None = None) -> tuple[int, str | None]:
    """(length, None) for a good episode; (0, message) naming the file, episode and key otherwise."""
    datasets = {}
    for label, key in layout.datasets().items():
        obj = group.get(key)
        if not isinstance(obj, h5py.Dataset):
            have = ", ".join(list_keys(group)) or "(none)"
            return 0, f"{where(path, name, key)}: missing; the episode has: {have}"
        datasets[label] = obj
    action = datasets["action"]
    length = int(action.shape[0]) if action.ndim else 0
    if length == 0:
        return 0, f"{where(path, name, layout.action)}: empty episode (0 steps)"
    for label, obj in datasets.items():
        rows = int(obj.shape[0]) if obj.ndim else 0
        if rows != length:
            key = label.split(":", 1)[-1] if label.startswith("state:") else layout.datasets()[label]
            return 0, (
                f"{where(path, name, key)}: has {rows} steps but {layout.action} has {length}; "
                "state, images and actions must have one row per step"
            )
    for label in ["action"] + [k for k in datasets if k.startswith("state:")]:
        if datasets[label].dtype.kind not in "biuf":
            key = layout.datasets()[label]
            return 0, f"{where(path, name, key)}: values of dtype {datasets[label].dtype}; expected numbers (float or int)"
    problem = width_problem(datasets, layout, path, name, widths)
    if problem:
        return 0, problem
    for label in ["action"] + [k for k in datasets if k.startswith("state:")]:
        key = layout.datasets()[label]
        try:
            values = np.asarray(datasets[label][()], dtype=np.float64)
        except (OSError, ValueError, TypeError) as err:
            return 0, f"{where(path, name, key)}: unreadable data ({err})"
        bad = ~np.isfinite(values)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            return 0, f"{where(path, name, key)}: {int(bad.sum())} non-finite values (NaN/inf), first at index {first}"
    return length, None


class BadEpisodes:
    """Raise on the first bad episode, or count them when `skip` is on."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.skipped: list[str] = []
        self.widths: dict[str, tuple[int, str]] = {}  # state/action size of the first good episode

    def report(self, problem: str) -> None:
        if not self.skip:
            raise DataError(f"{problem} (set data.skip_bad_episodes: true to drop such episodes)")
        self.skipped.append(problem)

    def log_lines(self) -> list[str]:
        if not self.skipped:
            return []
        lines = [f"data: skipped {len(self.skipped)} bad episode(s) (data.skip_bad_episodes)"]
        lines += [f"data:   {p}" for p in self.skipped[:10]]
        if len(self.skipped) > 10:
            lines.append(f"data:   ... and {len(self.skipped) - 10} more")
        return lines
