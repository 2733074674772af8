"""Checkpoints that a crash or kill can never leave half-written as `latest`.

A checkpoint is written into `checkpoints/.tmp-step_XXXXXXXX/`, every file fsynced, a manifest of
sizes and SHA-256 sums written last, then the folder is renamed to `step_XXXXXXXX` and only then the
`latest` (and, when asked, `best`) symlink is swapped atomically. Loading verifies the manifest and
falls back to the newest checkpoint that verifies, with a warning. Weights are safetensors; the other
files are JSON or `torch.save` of plain tensors/lists, read back with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

MANIFEST = "manifest.json"
POINTERS = ("latest", "best")


class CheckpointError(RuntimeError):
    pass


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(folder: Path) -> None:
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            files[str(path.relative_to(folder))] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=1))


def verify(folder: Path) -> str | None:
    """None when every file of the manifest is present with its size and checksum; else what is wrong."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return f"{folder} has no {MANIFEST} (incomplete write)"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError) as err:
        return f"{manifest} is unreadable: {err}"
    for rel, entry in files.items():
        path = folder / rel
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != entry["size"]:
            return f"{path} has {path.stat().st_size} bytes, manifest says {entry['size']}"
        if _sha256(path) != entry["sha256"]:
            return f"{path} fails its checksum"
    return None


def rng_state() -> dict:
    """Every RNG the loop touches, as tensors and strings (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": json.dumps(random.getstate()),
        "numpy": json.dumps([np_state[0], np_state[1].tolist(), *np_state[2:]]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = json.loads(state["numpy"])
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_torch(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True)


class CheckpointStore:
    """The `checkpoints/` folder of a run: save, point, prune, find the newest complete one."""

    def __init__(self, root: str | Path, total_limit: int | None = None) -> None:
        self.root = Path(root)
        self.total_limit = total_limit

    def step_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.is_symlink() and p.name.startswith("step_"))

    def pointer(self, name: str) -> Path | None:
        link = self.root / name
        if not link.is_symlink():
            return None
        target = (self.root / os.readlink(link)).resolve()
        return target if target.is_dir() else None

    def set_pointer(self, name: str, target: Path) -> None:
        tmp = self.root / f".{name}.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target.name, tmp)
        os.replace(tmp, self.root / name)

    def tmp_dir(self, step: int) -> Path:
        return self.root / f".tmp-{step_dir_name(step)}"

    def begin(self, step: int) -> Path:
        """Fresh temp folder for step `step` (rank 0 calls this before any rank writes into it)."""
        tmp = self.tmp_dir(step)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, step: int, best: bool = False) -> Path:
        """Seal the temp folder: manifest, fsync, rename, then swap `latest` (and `best`)."""
        tmp = self.tmp_dir(step)
        write_manifest(tmp)
        _fsync_tree(tmp)
        final = self.root / step_dir_name(step)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        self.set_pointer("latest", final)
        if best:
            self.set_pointer("best", final)
        self.prune()
        return final

    def save(self, step: int, write: Callable[[Path], None], best: bool = False) -> Path:
        """Single-process convenience: begin, let `write` fill the folder, commit."""
        tmp = self.begin(step)
        write(tmp)
        return self.commit(step, best=best)

    def prune(self) -> list[Path]:
        if not self.total_limit:
            return []
        keep = {p for p in (self.pointer(n) for n in POINTERS) if p is not None}
        dirs = self.step_dirs()
        removed = []
        for path in dirs:
            if len(dirs) - len(removed) <= self.total_limit:
                break
            if path.resolve() in keep:
                continue
            shutil.rmtree(path)
            removed.append(path)
        return removed

    def newest_complete(self, warn: Callable[[str], None] | None = None) -> Path | None:
        """`latest` if it verifies, else the newest step folder that does (with a warning)."""
        candidates = []
        latest = self.pointer("latest")
        if latest is not None:
            candidates.append(latest)
        candidates += [p for p in reversed(self.step_dirs()) if p.resolve() != latest]
        for path in candidates:
            problem = verify(path)
            if problem is None:
                return path
            if warn:
                warn(f"checkpoint {path.name} is not usable ({problem}); trying an older one")
        return None
