"""Run the real training command in a subprocess and wait on what it writes (tests/reliability helpers).

`python -m atlas.train --config F --output-dir D KEY=VALUE...` is the command users run; faults are set
through its environment (ATLAS_INJECT_*), and the tests watch train.log / metrics.jsonl to know where
the process is before they signal or kill it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from train_helpers import REPO, TINY

CONFIG_YAML = "data:\n  format: synthetic\n"


def config_file(folder: Path) -> Path:
    path = Path(folder) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(CONFIG_YAML)
    return path


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_INJECT_") and k != "ATLAS_STOP_AT_STEP"}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


class Train:
    """One `python -m atlas.train` process with its stderr kept in a file beside the run folder."""

    def __init__(self, run_dir: Path, overrides: list[str], resume: str | None = None, **env: str) -> None:
        self.run_dir = Path(run_dir)
        logs = self.run_dir.parent / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.stderr_path = logs / f"{self.run_dir.name}-{time.monotonic_ns()}.err"
        self.log_offset = _size(self.run_dir / "train.log")
        self.metrics_offset = _size(self.run_dir / "metrics.jsonl")
        cmd = [sys.executable, "-m", "atlas.train", "--config", str(config_file(self.run_dir.parent / "cfg")),
               "--output-dir", str(self.run_dir), *TINY, *overrides]
        if resume:
            cmd += ["--resume", resume]
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=child_env(**env), stdout=subprocess.DEVNULL,
                                     stderr=self._stderr, start_new_session=True)

    def new_log(self) -> str:
        """train.log written by this process (the file is appended to across resumes)."""
        return _read_from(self.run_dir / "train.log", self.log_offset)

    def new_metrics(self) -> list[dict]:
        text = _read_from(self.run_dir / "metrics.jsonl", self.metrics_offset)
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def last_step(self) -> int:
        steps = [m["step"] for m in self.new_metrics() if "loss" in m]
        return max(steps, default=0)

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, what: Callable[[], bool], timeout: float = 90.0, label: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited ({self.proc.returncode}) before {label}:\n{self.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"timed out waiting for {label}:\n{self.stderr()[-3000:]}")
            time.sleep(0.05)

    def wait(self, timeout: float = 120.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._stderr.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def kill_in_save(run_dir: Path, overrides: list[str], save: int, phase: str, marker: str) -> None:
    """Start a run that pauses in its `save`-th checkpoint at `phase` (ATLAS_INJECT_KILL_IN_SAVE), wait until its
    log shows `marker`, SIGKILL it there and check that it died of the kill."""
    run = Train(run_dir, overrides, ATLAS_INJECT_KILL_IN_SAVE=f"{save}:{phase}")
    try:
        run.wait_for(lambda: marker in run.new_log(), label=marker)
    finally:
        run.proc.send_signal(signal.SIGKILL)
        assert run.wait() == -signal.SIGKILL


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _read_from(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")
