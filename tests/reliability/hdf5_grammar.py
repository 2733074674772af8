"""HDF5 datasets as a grammar, for fuzzing: a valid small robomimic file or ALOHA folder changed in ONE
structural place, with the outcome the reader must give (the oracle).

The places come from the file itself (every dataset of every episode, every attribute), so a new key
in the writers is fuzzed too. A mutation drops a dataset, changes its dtype, its length or its width,
writes NaN/inf into it, empties an episode, renames a key or an episode, drops an attribute, or
truncates the file. `Expect` says whether the reader must refuse it (a DataError naming the file, the
episode and the dataset key, and what was expected) or read it, and then every value read must equal
what h5py reads from the file directly.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import h5py
import numpy as np

ROBOMIMIC_REQUIRED = ("actions", "obs/state", "obs/corner2_image")  # the layout the fuzz declares (data.obs_keys ...)
ALOHA_REQUIRED = ("action", "observations/qpos", "observations/images/cam_high", "observations/images/cam_left_wrist")
STATE_LIKE = {"actions", "obs/state", "action", "observations/qpos"}


@dataclass(frozen=True)
class H5Mutation:
    """One change: `kind` at `episode` (a group path in the file, "" for an ALOHA file) and `key` (a dataset
    path inside the episode) of the dataset file number `file`."""

    kind: str
    file: int
    episode: str
    key: str = ""
    arg: str = ""


@dataclass(frozen=True)
class H5Expect:
    outcome: Literal["reject", "accept"]
    key: str = ""  # the dataset key the message must name ("" for file-level problems)
    words: tuple[str, ...] = ()  # one of them must be in the message (what was expected)


def sha256_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def episodes_of(layout: str, files: list[Path]) -> list[tuple[int, str]]:
    """(file number, episode group) of every episode."""
    if layout == "aloha":
        return [(i, "") for i in range(len(files))]
    with h5py.File(files[0], "r") as f:
        return [(0, f"data/{name}") for name in f["data"]]


def datasets_of(path: Path, episode: str) -> list[str]:
    with h5py.File(path, "r") as f:
        group = f[episode] if episode else f
        names: list[str] = []
        group.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        return sorted(names)


def mutations(layout: str, files: list[Path]) -> list[H5Mutation]:
    """Every structural one-change mutation of the dataset, enumerated from its files."""
    out = []
    for file, episode in episodes_of(layout, files):
        for key in datasets_of(files[file], episode):
            out.append(H5Mutation("drop", file, episode, key))
            out.append(H5Mutation("rename_key", file, episode, key))
            out.append(H5Mutation("to_group", file, episode, key))
            out += [H5Mutation("dtype", file, episode, key, dtype) for dtype in ("int16", "float64", "S8")]
            out += [H5Mutation("rows", file, episode, key, delta) for delta in ("+1", "-1")]
            out.append(H5Mutation("width", file, episode, key))
            if key in STATE_LIKE:
                out += [H5Mutation("nonfinite", file, episode, key, value) for value in ("nan", "inf")]
        out.append(H5Mutation("zero_length", file, episode))
        out.append(H5Mutation("rename_episode", file, episode))
        out.append(H5Mutation("drop_attrs", file, episode))
    out += [H5Mutation("truncate", 0, "", arg=cut) for cut in ("0.5", "0.97")]
    return out


def _rewrite(group: h5py.Group, key: str, data: np.ndarray) -> None:
    del group[key]
    group.create_dataset(key, data=data)


def apply(mutation: H5Mutation, files: list[Path], required: tuple[str, ...]) -> H5Expect:
    """Change the file in place; the expectation the change implies."""
    path = files[mutation.file]
    if mutation.kind == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * float(mutation.arg))])
        return H5Expect("reject", "", ("cannot open", "read failed", "unreadable"))
    key, needed = mutation.key, mutation.key in required
    with h5py.File(path, "r+") as f:
        group = f[mutation.episode] if mutation.episode else f
        if mutation.kind == "zero_length":
            for name in datasets_of(path, mutation.episode):
                _rewrite(group, name, group[name][:0])
            return H5Expect("reject", required[0], ("empty episode", "0 steps"))
        if mutation.kind == "rename_episode":
            if not mutation.episode:
                return H5Expect("accept")
            f.move(mutation.episode, mutation.episode.replace("demo_", "demo_x"))  # any group under data/ is a demo
            return H5Expect("accept")
        if mutation.kind == "drop_attrs":
            for attrs in (group.attrs, f.attrs):
                for name in list(attrs):
                    del attrs[name]
            return H5Expect("accept")
        values = group[key][()]
        if mutation.kind == "drop":
            del group[key]
            return H5Expect("reject", key, ("missing",)) if needed else H5Expect("accept")
        if mutation.kind == "rename_key":
            group.move(key, key + "_v2")
            return H5Expect("reject", key, ("missing",)) if needed else H5Expect("accept")
        if mutation.kind == "to_group":
            del group[key]
            group.create_group(key).create_dataset("values", data=values)
            return H5Expect("reject", key, ("missing",)) if needed else H5Expect("accept")
        if mutation.kind == "rows":
            rows = values[:-1] if mutation.arg == "-1" else np.concatenate([values, values[-1:]])
            _rewrite(group, key, rows)
            return H5Expect("reject", key, ("steps",)) if needed else H5Expect("accept")
        if mutation.kind == "width":
            if values.ndim < 2:
                return H5Expect("accept")  # a [T] column has no width
            wider = np.concatenate([values, values[..., -1:]], axis=-1)
            _rewrite(group, key, wider)
            if not needed:
                return H5Expect("accept")
            return H5Expect("reject", key, ("expected height x width x 3",) if values.ndim == 4 else ("values per step",))
        if mutation.kind == "nonfinite":
            bad = values.astype(np.float32)
            bad.reshape(len(bad), -1)[len(bad) // 2, 0] = float(mutation.arg)
            _rewrite(group, key, bad)
            return H5Expect("reject", key, ("non-finite",)) if needed else H5Expect("accept")
        if mutation.kind == "dtype":
            image = values.ndim == 4
            if mutation.arg == "S8":
                _rewrite(group, key, np.array([b"x" * 8] * len(values), dtype="S8"))
                return H5Expect("reject", key, ("expected numbers", "expected JPEG or PNG")) if needed else H5Expect("accept")
            if image and mutation.arg == "float64":
                _rewrite(group, key, values.astype(np.float64) / 255.0)  # frames in [0, 1]: converted and logged
                return H5Expect("accept")
            _rewrite(group, key, np.rint(values).astype(mutation.arg) if values.dtype.kind == "f" and mutation.arg == "int16"
                     else values.astype(mutation.arg))
            if image and mutation.arg == "int16" and needed:
                return H5Expect("reject", key, ("dtype int16", "expected uint8"))
            return H5Expect("accept")
    raise ValueError(f"unknown mutation {mutation.kind}")


KEY_IN_MESSAGE = re.compile(r"key ([^\s,:]+)")


def judge_error(message: str, mutation: H5Mutation, expect: H5Expect, files: list[Path]) -> None:
    """A refusal names the file, the episode (where there is one) and the dataset key, and what was expected."""
    where = f"[{mutation}] {message}"
    path = files[mutation.file]
    assert str(path.resolve()) in message or str(path) in message, f"the file is not named: {where}"
    assert any(w in message for w in expect.words), f"expected one of {expect.words}: {where}"
    if not expect.key:
        return
    named = KEY_IN_MESSAGE.findall(message)
    assert named, f"no dataset key named: {where}"
    if mutation.kind in ("rows", "zero_length") and expect.key in ("actions", "action"):
        assert expect.key in message, where  # `obs/state: has 12 steps but actions has 13`
    elif mutation.kind != "zero_length":
        assert named[0] == expect.key, f"names key {named[0]!r}, the change was to {expect.key!r}: {where}"
    if mutation.episode and mutation.kind != "width":  # a width is judged against the first episode's
        demo = mutation.episode.split("/")[-1]
        assert re.search(rf"episode (\S+/)?{demo}\b", message), f"the episode is not named: {where}"


def judge_read_back(source, layout: str, files: list[Path]) -> None:
    """Every episode's state, actions and frames as the reader gives them equal h5py's direct read."""
    for e in range(source.num_episodes()):
        ref = source.episodes[e]
        with h5py.File(ref.path, "r") as f:
            group = f[ref.group] if ref.group else f
            rows = np.arange(ref.length)
            state = np.concatenate([group[k][()].reshape(ref.length, -1).astype(np.float32) for k in source.layout.state], axis=-1)
            np.testing.assert_array_equal(source.read(e, "state", rows), state, err_msg=ref.name)
            action = group[source.layout.action][()].reshape(ref.length, -1).astype(np.float32)
            np.testing.assert_array_equal(source.read(e, "action", rows), action, err_msg=ref.name)
            for camera, key in source.layout.images.items():
                stored = group[key][()]
                frames = np.rint(stored * 255).astype(np.uint8) if stored.dtype.kind == "f" else stored
                np.testing.assert_array_equal(source.read(e, f"image/{camera}", rows), frames, err_msg=f"{ref.name} {camera}")
