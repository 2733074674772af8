"""An `EpisodeSource` over HDF5 files, shared by every HDF5 format.

A format only finds its episodes and key layout (`EpisodeRef`, `KeyLayout`); reading is here. Files
are opened lazily, one handle per file per process, and reopened when the process id changes, so a
source built in the main process works inside forked DataLoader workers (h5py handles must not cross
a fork). Pickling (spawn workers) drops the handles too.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field

import h5py
import numpy as np

from atlas.data.episodes import EpisodeRefs
from atlas.data.errors import DataError, where
from atlas.data.formats.libero_spec import upright
from atlas.data.images import as_bytes, decode_jpeg

MAX_OPEN_FILES = 64


@dataclass
class EpisodeRef:
    """Where one episode lives and what it is."""

    path: str
    group: str  # "" for a file that is one episode (ALOHA), "data/demo_3" for robomimic
    name: str  # stable name used by `data.val_episodes` and the logs: "<file stem>/demo_3"
    length: int
    task: str
    instruction: str


@dataclass
class KeyLayout:
    """Dataset paths inside an episode group: state parts (concatenated in order), action, cameras."""

    state: list[str]
    action: str
    images: dict[str, str] = field(default_factory=dict)
    upside_down: bool = False  # frames stored bottom row first (LIBERO): read upright via libero_spec.upright

    def datasets(self) -> dict[str, str]:
        """Logical name → dataset path, for every dataset an episode must have."""
        out = {f"state:{p}": p for p in self.state}
        out["action"] = self.action
        out.update({f"image/{cam}": p for cam, p in self.images.items()})
        return out


def open_file(path: str) -> h5py.File:
    """Open read-only, turning h5py's OSError (missing, truncated, not HDF5) into a DataError."""
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot open as HDF5 (missing, truncated or not an HDF5 file): {err}") from None


def list_keys(group: h5py.Group) -> list[str]:
    """Every dataset path below a group, for 'missing key' messages."""
    names: list[str] = []
    group.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(names)


def get_dataset(group: h5py.Group, key: str, path: str, episode: str) -> h5py.Dataset:
    """group[key] as a dataset, or a DataError listing the keys the episode does have."""
    obj = group.get(key) if key else None
    if not isinstance(obj, h5py.Dataset):
        have = ", ".join(list_keys(group)) or "(none)"
        raise DataError(f"{where(path, episode, key)}: missing; the episode has: {have}")
    return obj


def is_encoded(dataset: h5py.Dataset) -> bool:
    """True for a column of encoded images (byte strings or vlen uint8), False for raw uint8 frames."""
    return dataset.dtype.kind in ("S", "O", "V") or h5py.check_vlen_dtype(dataset.dtype) is not None


def read_rows(dataset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """dataset[rows] for any (unsorted, repeated) rows: one contiguous slice read, then a gather."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return dataset[0:0]
    lo, hi = int(rows.min()), int(rows.max()) + 1
    return dataset[lo:hi][rows - lo]


def float_frames_to_uint8(frames: np.ndarray, place: str) -> np.ndarray:
    """Float frames as the uint8 the pipeline expects: [0, 1] scaled by 255, [0, 255] rounded (the transform
    divides by 255 later; unconverted [0, 1] floats would become black frames). Other ranges are refused."""
    finite = np.isfinite(frames)
    if not finite.all():
        raise DataError(f"{place}: float images hold NaN/inf values")
    low, high = (float(frames.min()), float(frames.max())) if frames.size else (0.0, 0.0)
    if low < 0.0 or high > 255.0:
        raise DataError(f"{place}: float images with values in [{low:g}, {high:g}]; expected [0, 1] or [0, 255]")
    scale = 255.0 if high <= 1.0 else 1.0
    return np.rint(frames.astype(np.float64) * scale).astype(np.uint8)


def float_image_notes(episodes: list[EpisodeRef], layout: KeyLayout) -> list[str]:
    """A log line per camera stored as floats (read from the first episode), so the conversion is never silent."""
    if not episodes or not layout.images:
        return []
    notes = []
    try:
        with h5py.File(episodes[0].path, "r") as handle:
            group = handle[episodes[0].group] if episodes[0].group else handle
            for camera, key in layout.images.items():
                dataset = group.get(key)
                if isinstance(dataset, h5py.Dataset) and dataset.dtype.kind == "f":
                    notes.append(f"data: camera {camera} stores {dataset.dtype} frames; converted to uint8 "
                                 "(values in [0, 1] x 255, values in [0, 255] rounded)")
    except (OSError, KeyError, ValueError):
        return []
    return notes


class HDF5Source(EpisodeRefs):
    """Episodes of HDF5 files with one key layout; implements `EpisodeSource`."""

    def __init__(self, episodes: list[EpisodeRef], layout: KeyLayout, metadata: dict | None = None) -> None:
        self.episodes = episodes
        self.layout = layout
        self.cameras = list(layout.images)
        self.metadata = dict(metadata or {})
        self.notes: list[str] = float_image_notes(episodes, layout)  # log lines of the indexing (skipped episodes ...)
        self._handles: OrderedDict[str, h5py.File] = OrderedDict()
        self._datasets: dict[tuple[str, str, str], h5py.Dataset] = {}  # skips h5py's path lookup per read
        self._pid = os.getpid()

    # -- EpisodeSource ----------------------------------------------------------------------------
    def camera_key(self, camera: str) -> str:
        """The dataset's own name of a camera: its HDF5 dataset's name (`corner2_image`, `cam_high`)."""
        return self.layout.images[camera].rsplit("/", 1)[-1]

    def read(self, episode: int, key: str, rows: np.ndarray) -> np.ndarray:
        ref = self.episodes[episode]
        if key == "state":
            parts = [self._read(ref, p, rows).astype(np.float32) for p in self.layout.state]
            return np.concatenate([p.reshape(len(p), -1) for p in parts], axis=-1)
        if key == "action":
            out = self._read(ref, self.layout.action, rows).astype(np.float32)
            return out.reshape(len(out), -1)
        if key.startswith("image/") and key[6:] in self.layout.images:
            return self._read_images(ref, self.layout.images[key[6:]], rows)
        raise KeyError(f"unknown source key {key!r}; valid: state, action, " + ", ".join(f"image/{c}" for c in self.cameras))

    # -- files ------------------------------------------------------------------------------------
    def _file(self, path: str) -> h5py.File:
        if os.getpid() != self._pid:  # forked: the parent's handles are not ours to use
            self._handles = OrderedDict()
            self._datasets = {}
            self._pid = os.getpid()
        handle = self._handles.get(path)
        if handle is None:
            handle = open_file(path)
            self._handles[path] = handle
            while len(self._handles) > MAX_OPEN_FILES:
                old_path, old = self._handles.popitem(last=False)
                self._datasets = {k: v for k, v in self._datasets.items() if k[0] != old_path}
                old.close()
        else:
            self._handles.move_to_end(path)
        return handle

    def _dataset(self, ref: EpisodeRef, key: str) -> h5py.Dataset:
        handle = self._file(ref.path)  # first: resets the caches after a fork
        cached = self._datasets.get((ref.path, ref.group, key))
        if cached is None:
            group = handle[ref.group] if ref.group else handle
            cached = self._datasets[(ref.path, ref.group, key)] = get_dataset(group, key, ref.path, ref.name)
        return cached

    def _read(self, ref: EpisodeRef, key: str, rows: np.ndarray) -> np.ndarray:
        try:
            return read_rows(self._dataset(ref, key), rows)
        except DataError:
            raise
        except (OSError, KeyError, ValueError, IndexError) as err:
            raise DataError(f"{where(ref.path, ref.name, key)}: read failed: {err}") from None

    def _read_images(self, ref: EpisodeRef, key: str, rows: np.ndarray) -> np.ndarray:
        try:
            dataset = self._dataset(ref, key)
            if not is_encoded(dataset):
                frames = read_rows(dataset, rows)
            else:
                unique, inverse = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
                frames = np.stack([decode_jpeg(as_bytes(dataset[int(r)])) for r in unique])[inverse.reshape(-1)]
            if frames.dtype != np.uint8 and frames.dtype.kind == "f":
                frames = float_frames_to_uint8(frames, where(ref.path, ref.name, key))
            if frames.ndim != 4 or frames.shape[-1] != 3:
                raise DataError(f"{where(ref.path, ref.name, key)}: frames of shape {tuple(frames.shape[1:])}, "
                                "expected height x width x 3 (RGB)")
            return upright(frames) if self.layout.upside_down else frames
        except DataError as err:
            if str(err).startswith(str(ref.path)):
                raise
            raise DataError(f"{where(ref.path, ref.name, key)}: {err}") from None
        except (OSError, KeyError, ValueError, IndexError) as err:
            raise DataError(f"{where(ref.path, ref.name, key)}: read failed: {err}") from None

    def close(self) -> None:
        self._datasets = {}
        for handle in self._handles.values():
            handle.close()
        self._handles = OrderedDict()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"] = OrderedDict()
        state["_datasets"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()


HDF5_SUFFIXES = (".hdf5", ".h5", ".he5")


def find_files(path: str) -> list[str]:
    """A file, or every HDF5 file below a folder (sorted, recursive): the dataset's files in a stable order."""
    if not path:
        raise DataError("data.path is not set; point it at an HDF5 file or a folder of them")
    root = os.path.abspath(os.path.expanduser(path))
    if os.path.isfile(root):
        return [root]
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such file or folder (data.path)")
    found = []
    for folder, _, names in os.walk(root):
        found += [os.path.join(folder, n) for n in names if n.lower().endswith(HDF5_SUFFIXES)]
    if not found:
        raise DataError(f"{root}: empty dataset, the folder holds no HDF5 files ({', '.join(HDF5_SUFFIXES)})")
    return sorted(found)


def text_attr(value: object) -> str | None:
    """An HDF5 attribute as text (bytes, numpy strings, one-element arrays)."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return None
        value = value.reshape(-1)[0]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)
