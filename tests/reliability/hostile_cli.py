"""The hostile-input suite's harness: each case is one real `python -m atlas.cli ...` in a subprocess.

A case prepares files in its own folder, runs the command with its address space capped (RLIMIT_AS, so a
blow-up is an error here, not a swapping machine), and is judged on: the exit code; no "Traceback" on any
stream; one message naming the field or file; the peak RSS (os.wait4); and, for the data-loss cases, every
file that existed before the command byte-for-byte intact after it. Cases of a module run two at a time
(the commands are mostly Python start-up and `import torch`), once per module, before its tests read them.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from train_helpers import REPO

MEMORY_LIMIT = 4 * 2**30  # address space per command: torch + a tiny model fit in well under half of it
TIMEOUT_S = 150.0
PARALLEL = 2


@dataclass
class Case:
    """One hostile input. `argv` and `names` may use `{d}` for the case's folder."""

    id: str
    argv: list[str]
    rc: int | None = 2  # None: any ordinary exit (0, 1, 2), for cases judged only on what they must not do
    names: list[str] = field(default_factory=list)  # what the one message must mention (field, file, flag)
    setup: Callable[[Path], None] | None = None
    intact: bool = False  # files present before the command must be unchanged after it
    absent: list[str] = field(default_factory=list)  # canaries: paths that must not exist afterwards
    check: Callable[[Path, Outcome], None] | None = None  # extra assertions on a finished case
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = TIMEOUT_S


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float
    folder: Path
    before: dict[str, str]
    after: dict[str, str]


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every regular file below `folder` (symlinks by their target text)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_INJECT_")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", MUJOCO_GL=env.get("MUJOCO_GL", "egl"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.update(extra)
    return env


def run_atlas(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = TIMEOUT_S):
    """(rc, stdout, stderr, seconds, peak RSS MB) of `python -m atlas.cli ARGV` under the memory cap."""
    cwd.mkdir(parents=True, exist_ok=True)
    out_path, err_path = cwd.parent / f".{cwd.name}.out", cwd.parent / f".{cwd.name}.err"
    start = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "atlas.cli", *argv], cwd=cwd, env=child_env(env or {}),
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL, preexec_fn=_limit_memory,
                                start_new_session=True)
        killer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    return (proc.returncode, out_path.read_text(errors="replace"), err_path.read_text(errors="replace"), seconds,
            usage.ru_maxrss / 1024)


def _run_case(case: Case, root: Path) -> Outcome:
    folder = root / case.id
    folder.mkdir(parents=True)
    if case.setup:
        case.setup(folder)
    before = snapshot(folder)
    argv = [a.replace("{d}", str(folder)) for a in case.argv]
    rc, out, err, seconds, rss = run_atlas(argv, folder, case.env, case.timeout)
    return Outcome(rc, out, err, seconds, rss, folder, before, snapshot(folder))


def run_cases(cases: Iterable[Case], root: Path) -> dict[str, Outcome]:
    cases = list(cases)
    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(lambda c: _run_case(c, root), cases))
    return {case.id: outcome for case, outcome in zip(cases, outcomes)}


def judge(case: Case, outcome: Outcome) -> None:
    """The assertions every case makes (see the module docstring)."""
    text = outcome.stdout + outcome.stderr
    where = f"[{case.id}] rc={outcome.rc} in {outcome.seconds:.1f} s\n--- stderr ---\n{outcome.stderr[-3000:]}"
    assert "Traceback" not in text, where
    assert outcome.rc == case.rc if case.rc is not None else outcome.rc in (0, 1, 2), where
    assert outcome.peak_rss_mb < MEMORY_LIMIT / 2**20, where
    if case.rc:
        message = error_message(outcome.stderr)
        assert message, f"no error message on stderr\n{where}"
        for name in case.names:
            name = name.replace("{d}", str(outcome.folder))
            assert name in message, f"{name!r} not in the message:\n{message}\n{where}"
    if case.intact:
        changed = [p for p, digest in outcome.before.items() if outcome.after.get(p) != digest]
        assert not changed, f"user files changed or removed: {changed}\n{where}"
    for rel in case.absent:
        assert not (outcome.folder / rel).exists(), f"canary {rel} exists: something was executed\n{where}"
    if case.check:
        case.check(outcome.folder, outcome)


def error_message(stderr: str) -> str:
    """The one error of a failed command: from its `atlas <command>: ` line (argparse: `... error: `) to the end."""
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("atlas") and ": " in line
              and not line.startswith("atlas: warning")]
    if not starts:
        return ""
    return "\n".join(lines[starts[0]:])


def write(folder: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def outcomes_after_a_trained_run(root: Path, config_yaml: str, trained: dict, cases) -> dict[str, Outcome]:
    """Train one tiny run (cases copy it as their starting point, `trained["run"]`), then run every case."""
    write(root / "trained", {"c.yaml": config_yaml})
    rc, _, err, _, _ = run_atlas(["train", "--config", "c.yaml", "--output-dir", "run"], root / "trained")
    assert rc == 0, err[-3000:]
    trained["run"] = root / "trained" / "run"
    return run_cases(cases, root)
