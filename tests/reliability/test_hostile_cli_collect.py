"""`atlas collect` never loses the user's demonstrations: an existing --out is refused unless --overwrite or
--append, arguments are checked before the first episode, and episodes go to a temporary file renamed at the
end, so a typo, an error or Ctrl-C leaves the old file byte-for-byte as it was."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hostile_cli import Case, child_env, judge, run_atlas, run_cases, snapshot, write

pytestmark = pytest.mark.sim

COLLECTED: dict[str, Path] = {}
COLLECT = ["collect", "metaworld", "--tasks", "reach-v3", "--episodes", "1", "--image-size", "16"]


def existing(d: Path) -> None:
    shutil.copyfile(COLLECTED["file"], d / "demos.hdf5")


def with_file(files: dict):
    return lambda d: write(d, files)


def _arrays(path: Path) -> dict[str, bytes]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, np.asarray(o[()]).tobytes()) if isinstance(o, h5py.Dataset) else None)
    return out


def _appended(d: Path, outcome) -> None:
    old, new = _arrays(COLLECTED["file"]), _arrays(d / "demos.hdf5")
    assert all(new[k] == v for k, v in old.items())  # the first batch's episodes unchanged, as demo_0
    assert any(k.startswith("data/demo_1/") for k in new)
    assert not list(d.glob(".demos.hdf5.partial-*"))


def _replaced(d: Path, outcome) -> None:
    with h5py.File(d / "demos.hdf5", "r") as f:
        assert f["data/demo_0/obs/state"].shape[1] == 39 and "demo_1" not in f["data"]
    assert not list(d.glob(".demos.hdf5.partial-*"))


OUT = ["--out", "demos.hdf5"]
CASES = [
    Case("image-size-0", [*COLLECT, *OUT, "--image-size", "0"], names=["--image-size"]),
    Case("episodes-0", [*COLLECT[:4], "--episodes", "0", *OUT], names=["--episodes"]),
    Case("seed-negative", [*COLLECT, *OUT, "--seed", "-1"], names=["--seed"]),
    Case("overwrite-and-append", [*COLLECT, *OUT, "--overwrite", "--append"], names=["--append", "--overwrite"]),
    Case("unknown-task", ["collect", "metaworld", "--tasks", "reach-v9", "--episodes", "1", *OUT], names=["reach-v9"]),
    Case("existing-out-refused", [*COLLECT, *OUT], setup=existing, intact=True, names=["demos.hdf5", "--append", "--overwrite"]),
    Case("camera-typo-with-overwrite", [*COLLECT, *OUT, "--overwrite", "--cameras", "cornr2"], setup=existing,
         intact=True, names=["--cameras", "cornr2", "corner2"]),
    Case("out-is-a-folder", [*COLLECT, "--out", "data"], setup=lambda d: (d / "data").mkdir(), intact=True,
         names=["--out", "folder"]),
    Case("out-below-a-file", [*COLLECT, "--out", "f/demos.hdf5"], setup=with_file({"f": "x"}), intact=True,
         names=["--out", "is a file"]),
    Case("out-unwritable", [*COLLECT, "--out", "/proc/atlas-demos.hdf5"], names=["--out", "/proc"]),
    Case("append-to-a-non-hdf5-file", [*COLLECT, *OUT, "--append", "--seed", "5"],
         setup=with_file({"demos.hdf5": "my notes"}), intact=True, names=["demos.hdf5", "--append"]),
    Case("append-to-a-foreign-hdf5", [*COLLECT, *OUT, "--append", "--seed", "5"], intact=True, names=["env_args"],
         setup=lambda d: h5py.File(d / "demos.hdf5", "w").close()),
    Case("append-same-seed", [*COLLECT, *OUT, "--append"], setup=existing, intact=True, names=["--seed 0"]),
    Case("append-other-image-size", [*COLLECT, *OUT, "--append", "--seed", "5", "--image-size", "32"], setup=existing,
         intact=True, names=["--image-size", "16"]),
    Case("append-other-cameras", [*COLLECT, *OUT, "--append", "--seed", "5", "--cameras", ""], setup=existing,
         intact=True, names=["cameras"]),
    Case("append-adds-episodes", [*COLLECT, *OUT, "--append", "--seed", "5"], rc=0, setup=existing, check=_appended),
    Case("overwrite-replaces-at-the-end", [*COLLECT, *OUT, "--overwrite", "--cameras", ""], rc=0, setup=existing,
         check=_replaced),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-collect")
    rc, _, err, _, _ = run_atlas([*COLLECT, "--out", "first.hdf5"], root / "first")
    assert rc == 0, err[-3000:]
    COLLECTED["file"] = root / "first" / "first.hdf5"
    return run_cases(CASES, root)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_collect(case, outcomes):
    judge(case, outcomes[case.id])


@pytest.mark.timeout(300)
def test_ctrl_c_during_an_overwrite_leaves_the_old_file(tmp_path, outcomes):
    existing(tmp_path)
    before = snapshot(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "atlas.cli", "collect", "metaworld", "--tasks", "reach-v3,push-v3",
                             "--episodes", "30", "--out", "demos.hdf5", "--overwrite", "--image-size", "16"],
                            cwd=tmp_path, env=child_env({}), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".demos.hdf5.partial-*")) and time.monotonic() < deadline:  # episodes being written
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"Traceback" not in err, err.decode()[-2000:]
    assert snapshot(tmp_path) == before  # the old file as it was, no partial file left
