"""Where `atlas collect` writes: never over the user's file by accident, never a half-written file.

Episodes go into a temporary file beside `--out`; only a collection that finished is renamed over it
(`os.replace`, atomic on one file system). An existing `--out` is refused unless `--overwrite` (replaced
at the end) or `--append` (its episodes copied into the temporary file first, the new ones added after
them, after checking that cameras, image size and state/action sizes agree).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from atlas.config.errors import ConfigError
from atlas.textfile import unwritable_reason


def check_output(out: Path, overwrite: bool, append: bool) -> None:
    """ConfigError before any simulation when `out` cannot be written or would be lost."""
    reason = unwritable_reason(out)
    if reason:
        raise ConfigError(f"--out {out}: cannot write there: {reason}")
    if out.exists() and not (overwrite or append):
        raise ConfigError(f"--out {out} already exists; pass --append to add episodes to it, --overwrite to "
                          "replace it (once the new collection has finished), or choose another file")
    if append and not out.exists():
        raise ConfigError(f"--out {out}: --append needs an existing file to add to; it does not exist")


def existing_env_args(out: Path) -> dict:
    """env_args of the file `--append` adds to, or a ConfigError saying why it cannot be appended to."""
    import h5py

    try:
        with h5py.File(out, "r") as f:
            data = f.get("data")
            raw = data.attrs.get("env_args") if isinstance(data, h5py.Group) else None
            collection = data.attrs.get("collection") if isinstance(data, h5py.Group) else None
            env_args = json.loads(raw) if raw is not None else None
            json.loads(collection) if collection is not None else None
    except (OSError, ValueError) as err:
        raise ConfigError(f"--out {out}: --append needs a file written by atlas collect; cannot read it ({err})") from None
    if not isinstance(env_args, dict) or not isinstance(env_args.get("env_kwargs"), dict):
        raise ConfigError(f"--out {out}: --append needs a file written by atlas collect (no env_args in data/)")
    return env_args


def merged_env_args(old: dict, new: dict, out: Path) -> dict:
    """env_args for old + new episodes; ConfigError when the batches could not be trained on together."""
    a, b = old["env_kwargs"], new["env_kwargs"]
    for key, flag in (("image_size", "--image-size"), ("cameras", "--cameras"), ("state_dim", None), ("action_dim", None)):
        if key in a and a[key] != b[key]:
            raise ConfigError(f"--append: {out} has {key}={a[key]!r}, this collection {key}={b[key]!r}; "
                              f"one file needs one {flag or key}" + (f" (pass {flag} {a[key]})" if flag else ""))
    seeds = list(a.get("seeds", [a.get("seed")]))
    if b["seed"] in seeds:
        raise ConfigError(f"--append: {out} was already collected with --seed {b['seed']}: the same seed gives the "
                          f"same episodes again; pass another --seed (used: {', '.join(map(str, seeds))})")
    merged = json.loads(json.dumps(old))
    kwargs = merged["env_kwargs"]
    kwargs["tasks"] = list(dict.fromkeys([*a.get("tasks", []), *b["tasks"]]))
    kwargs["instructions"] = {**a.get("instructions", {}), **b["instructions"]}
    kwargs["seeds"] = [*seeds, b["seed"]]
    return merged


def merged_collection(out: Path, new: dict) -> dict:
    """Per-task kept/tried of the file plus this collection's."""
    import h5py

    with h5py.File(out, "r") as f:
        old = json.loads(f["data"].attrs.get("collection", "{}"))
    merged = dict(old)
    for task, entry in new.items():
        before = old.get(task, {"episodes": 0, "tried": 0})
        episodes, tried = before["episodes"] + entry["episodes"], before["tried"] + entry["tried"]
        merged[task] = {"episodes": episodes, "tried": tried, "expert_success_rate": round(episodes / max(tried, 1), 4)}
    return merged


def temporary_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial-{os.getpid()}")


def start_temporary(out: Path, append: bool) -> Path:
    """The temporary file to write into (a copy of `out` when appending)."""
    tmp = temporary_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if append:
        shutil.copyfile(out, tmp)
    return tmp


def finish(tmp: Path, out: Path) -> None:
    """Put the finished temporary file (or dataset folder) in place of `out`."""
    if tmp.is_dir() and out.is_dir():  # --overwrite of a dataset folder: the checks above allowed it
        shutil.rmtree(out)
    os.replace(tmp, out)


def discard(tmp: Path) -> None:
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)
