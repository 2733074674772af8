"""Read a small text file the user points Atlas at (a config, a launch script), bounded and checked.

`atlas doctor /dev/zero` must not read forever and a 3 GB file must not be loaded to find out it is not
a config: only regular files up to a size cap are read, and bytes that are not UTF-8 are reported with
the line they are on, as one ConfigError naming the file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from atlas.config.errors import ConfigError

MAX_TEXT_BYTES = 4 * 2**20  # configs and launch scripts are a few KiB; 4 MiB leaves room for generated ones


def checked_path(path: str | Path, what: str) -> Path:
    """The path of an existing regular file, else a ConfigError saying what it is instead."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as err:
        raise ConfigError(f"{what} {path} cannot be read: {err.strerror or err}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{what} {path} is not a regular file (a device, pipe or socket); pass a file")
    return path


def read_text_file(path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of `path` (a BOM is dropped), or one ConfigError naming the file and the problem."""
    path = checked_path(path, what)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as err:
        raise ConfigError(f"{what} {path} cannot be read: {err.strerror or err}") from None
    if len(data) > max_bytes:
        raise ConfigError(f"{what} {path} is larger than {max_bytes // 2**20} MiB; this is not a {what} Atlas reads")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"{what} {path} holds NUL bytes: it is a binary file, not a {what}")
    return text.removeprefix("\ufeff")


def _existing_ancestor(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def unwritable_reason(path: str | Path) -> str | None:
    """None when a file can be created (or replaced) at `path`; else why not, in words. Checked before
    the work that produces the file, so that an hour of evaluation is not lost to a typo in `--out`."""
    path = Path(path)
    if path.is_dir():
        return "it is a folder"
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a folder"
    name_max = os.pathconf(ancestor, "PC_NAME_MAX")
    too_long = [p for p in path.parts if len(p.encode()) > name_max]
    if too_long:
        return f"the name {too_long[0][:40]}... is {len(too_long[0].encode())} bytes long; the file system allows {name_max}"
    path_max = os.pathconf(ancestor, "PC_PATH_MAX")
    if len(str(path.absolute()).encode()) >= path_max:
        return f"the path is {len(str(path.absolute()).encode())} bytes long; the file system allows {path_max - 1}"
    try:  # a real probe: os.access says yes to root even where the file system says no (/proc, read-only mounts)
        with tempfile.NamedTemporaryFile(dir=ancestor, prefix=".atlas-probe-"):
            pass
    except OSError as err:
        return f"the folder {ancestor} is not writable ({err.strerror or err})"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is not writable"
    return None
