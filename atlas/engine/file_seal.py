"""Checksums and flushes of a checkpoint's files, started while the rest of the checkpoint is still being written.

A save writes its big files one after another on the training thread (the optimizer state, the weights, the
EMA); each then has to be read back for its SHA-256 and fsynced before the folder may be renamed into place.
`EarlySeal` does that for each file on helper threads as soon as the file is written, so the checksum and the
flush of the optimizer state overlap with the serialization of the weights (hashlib, reads and fsync release the
GIL; "Checksums and flushes beside the writes" in benchmarks/RESULTS.md). The small files (RNG, schedule,
trainer state, configs) are hashed and flushed together once the last is written, and the folders after them:
on ext4 concurrent fsyncs share the journal's commits, so a dozen cost little more than one ("Flushes in
parallel"). The commit still waits for every digest and flush before its manifest and rename: what is on the
disk when the folder is renamed, and when `latest` moves, is what a fully serial save leaves."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB blocks (a multi-GB optimizer file never sits in memory whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path, flushed: Collection[Path] = (), pool: Executor | None = None) -> None:
    """Every file not already in `flushed`, then every folder's entries (the root last), so the rename that
    seals the checkpoint never reaches the disk before them. `pool`: the files, then the folders below the
    root, flushed concurrently (each group complete before the next starts)."""
    flushed = set(flushed)
    paths = sorted(root.rglob("*"))
    files = [path for path in paths if path.is_file() and path not in flushed]
    folders = sorted((p for p in paths if p.is_dir()), key=lambda p: -len(p.parts))  # deepest first
    for group in (files, folders):
        if pool is None:
            for path in group:
                fsync_path(path)
        else:
            for future in [pool.submit(fsync_path, path) for path in group]:
                future.result()
    fsync_path(root)


def _digest_and_flush(path: Path) -> str:
    sha = sha256_of(path)
    fsync_path(path)
    return sha


class EarlySeal:
    """The files of one save in flight, each hashed and fsynced on a helper thread once it is complete."""

    WORKERS = 4  # fsync waits on the disk, not the CPU; the hashes release the GIL

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._root: Path | None = None
        self._pending: dict[str, Future] = {}

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.WORKERS, thread_name_prefix="atlas-seal")
        return self._pool

    def start(self, root: Path) -> None:
        """A new save into `root`; whatever an earlier one left is dropped (its folder is gone)."""
        self.drain()
        self._root = root

    def written(self, name: str) -> None:
        """`name` (relative to the save's folder) is complete and will not change again."""
        if self._root is None:
            return
        self._pending[name] = self.pool.submit(_digest_and_flush, self._root / name)

    def results(self, known: Collection[str] = ()) -> tuple[dict[str, str], set[Path]]:
        """({name: sha256}, the flushed paths) of every file in the save's folder: the ones handed in, and
        the rest, hashed and flushed now, concurrently (`known`: names whose digest the caller vouches for, a
        linked frozen file: flushed, not read). The first error (a failed read or flush) is raised here, on
        the thread that commits."""
        root, pending = self._root, self._pending
        self._root, self._pending = None, {}
        if root is None:
            return {}, set()
        flushes = {}
        for path in sorted(root.rglob("*")):
            name = path.relative_to(root).as_posix()
            if name in pending or not path.is_file():
                continue
            if name in known:
                flushes[name] = self.pool.submit(fsync_path, path)
            else:
                pending[name] = self.pool.submit(_digest_and_flush, path)
        digests = {name: future.result() for name, future in pending.items()}
        for future in flushes.values():
            future.result()
        return digests, {root / name for name in (*digests, *flushes)}

    def drain(self) -> None:
        """Wait for the files in flight and forget them (an aborted save, before its folder is removed)."""
        pending, self._root, self._pending = self._pending, None, {}
        for future in pending.values():
            future.exception()  # waited for; its error belongs to a save that is being dropped
