"""Which `data.format` a path holds, for the commands that take a bare dataset path (stats, inspect, convert)."""

from __future__ import annotations

import h5py

from atlas.data.errors import DataError
from atlas.data.hdf5source import find_files, open_file
from atlas.data.lerobot_meta import is_lerobot_folder


def detect_format(path: str) -> str:
    """lerobot for a folder with meta/info.json; robomimic when the first HDF5 file has a `data` group of demos,
    aloha when it has `action` + `observations`."""
    if is_lerobot_folder(path):
        return "lerobot"
    first = find_files(path)[0]
    with open_file(first) as handle:
        if isinstance(handle.get("data"), h5py.Group):
            return "robomimic"
        if "action" in handle and isinstance(handle.get("observations"), h5py.Group):
            return "aloha"
        keys = ", ".join(sorted(handle))
    raise DataError(f"{first}: cannot tell the format (top-level keys: {keys}); pass --format robomimic|aloha|lerobot")
