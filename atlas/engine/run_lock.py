"""One training process per run folder: an advisory lock held for the whole run.

Two `atlas train` into one folder would interleave metrics.jsonl and prune each other's checkpoints. The
first run holds `RUN_FOLDER/.atlas.lock` with `fcntl.flock` (the kernel drops it when the process dies,
even by SIGKILL, so a lock left by a dead process is stale by construction and taken over with a note)
and writes its PID, host and start time into it; the second run refuses, naming that PID.

    with hold_run_folder(run_dir, enabled=ctx.is_main, log=log.warning):
        ... the run ...
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from atlas.config.errors import ConfigError
from atlas.errors import AtlasError

LOCK_NAME = ".atlas.lock"


class RunFolderLocked(AtlasError, RuntimeError):
    """Another live process is training into this run folder."""


def _holder(path: Path) -> dict:
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict) -> str:
    pid, host = holder.get("pid", "?"), holder.get("host", "?")
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"])) if "started" in holder else "?"
    return f"PID {pid} on {host}, running since {since}"


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _lock(path: Path, run_dir: Path) -> int:
    """An fd holding the flock of the file now at `path` (a holder that unlinked it as we opened it: retry)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_holder(path))
            os.close(fd)
            raise RunFolderLocked(
                f"{run_dir} is in use by another training run ({holder}); two runs in one folder would mix "
                "their metrics and delete each other's checkpoints. Wait for it, stop it, or choose another "
                "--output-dir"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def hold_run_folder(run_dir: str | Path, enabled: bool = True,
                    log: Callable[[str], None] | None = None) -> Iterator[Path | None]:
    """Hold the run folder's lock for the block (rank 0 only: pass enabled=ctx.is_main). Creates the folder.

    Raises RunFolderLocked naming the holder's PID when another live process holds it. The lock file is
    removed on exit; a folder this call created and that is still empty is removed too."""
    if not enabled:
        yield None
        return
    run_dir = Path(run_dir)
    try:
        if run_dir.exists() and not run_dir.is_dir():
            raise ConfigError(f"--output-dir {run_dir} is a file, not a folder; choose a folder for the run")
        created = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--output-dir {run_dir}: cannot create the run folder: {err.strerror or err}") from None
    path = run_dir / LOCK_NAME
    fd = _lock(path, run_dir)
    try:
        stale = _holder(path)
        if stale and log is not None and stale.get("pid") != os.getpid() and not _alive(stale.get("pid")):
            log(f"{path}: taking over a stale lock of a process that is gone ({_describe(stale)})")
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode())
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
            if created:
                with contextlib.suppress(OSError):
                    run_dir.rmdir()  # only if empty: a run that refused to start leaves no folder behind
    finally:
        os.close(fd)  # releases the flock
