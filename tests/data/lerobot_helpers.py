"""The shared LeRobot fixture (written by lerobot-dataset 0.4.4) and the `atlas` CLI as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from safetensors.numpy import load_file

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO.parent / "shared" / "fixtures" / "lerobot_v30_small"
PROBES = [0, 1, 39, 40, 41, 74, 75, 114]
TENSORS = ("state", "state_is_pad", "actions", "actions_is_pad", "image.front")


def fixture_copy(tmp_path: Path) -> Path:
    """A private copy of the fixture's dataset folder (reading may write a statistics cache beside it)."""
    out = tmp_path / "lerobot_v30_small"
    shutil.copytree(FIXTURE / "dataset", out)
    return out


def expected() -> tuple[dict, dict]:
    """(tensors LeRobot returned, {index: {episode_index, frame_index, task}})."""
    probes = {p["index"]: p for p in json.loads((FIXTURE / "expected.json").read_text())["probes"]}
    return load_file(str(FIXTURE / "expected.safetensors")), probes


def atlas(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """`python -m atlas.cli ARGS` with this tree on the path."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "atlas.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(REPO))


def atlas_in_process(*args: str) -> int:
    """The same CLI entry point in this process (for conversions: saves a Python start per call)."""
    from atlas.cli import main

    return main(list(args))
