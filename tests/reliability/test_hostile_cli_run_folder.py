"""Run folders and checkpoints a careless or hostile user hands to `atlas train`: the user's files are never
replaced, pruned or resumed over; foreign and damaged checkpoints are refused by name, never a traceback.

One real run (2 steps, a checkpoint each) is trained once per module; cases copy it and damage the copy.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from hostile_cli import Case, judge, outcomes_after_a_trained_run, run_atlas, write

TINY = """\
data: {format: synthetic, num_episodes: 8, episode_length: 12, state_dim: 6, action_dim: 3}
model: {preset: mlp, hidden_dim: 32, num_layers: 2, action_horizon: 6}
training: {max_steps: 2, val_interval: 1, checkpoint_interval: 1}
logging: {progress_bar: false, tensorboard: false}
"""
TRAINED: dict[str, Path] = {}  # filled by the module fixture before the cases run


def train(*extra: str, out: str = "run") -> list[str]:
    return ["train", "--config", "c.yaml", "--output-dir", out, *extra]


def with_config(more=None):
    def setup(d: Path) -> None:
        write(d, {"c.yaml": TINY})
        if more:
            more(d)
    return setup


def trained_copy(more=None):
    """The module's trained run copied to d/run (symlinks kept), then `more(d)` damages it."""
    def setup(d: Path) -> None:
        write(d, {"c.yaml": TINY})
        shutil.copytree(TRAINED["run"], d / "run", symlinks=True)
        if more:
            more(d)
    return setup


def step(d: Path, n: int) -> Path:
    return d / "run" / "checkpoints" / f"step_{n:08d}"


def reseal(folder: Path) -> None:
    """Rewrite the manifest to match edited files: damage that checksums cannot catch."""
    from atlas.engine.checkpoint import write_manifest

    (folder / "manifest.json").unlink()
    write_manifest(folder)


def edit_state(change):
    def more(d: Path) -> None:
        path = step(d, 2) / "trainer_state.json"
        state = json.loads(path.read_text())
        path.write_text(change(state) if callable(change) else change)
        reseal(step(d, 2))
    return more


def manifest(text: str):
    return lambda d: (step(d, 2) / "manifest.json").write_text(text)


class _Touch:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def pickle_in_optimizer(d: Path) -> None:
    (step(d, 2) / "optimizer.pt").write_bytes(pickle.dumps(_Touch()))
    reseal(step(d, 2))


def user_copies(d: Path) -> None:
    """A user's backups in checkpoints/: a `.bak` copy, and `_old_lr` that really holds step 1."""
    shutil.copytree(step(d, 1), d / "run" / "checkpoints" / "step_00000001.bak")
    shutil.copytree(step(d, 1), d / "run" / "checkpoints" / "step_00000010_old_lr")
    shutil.copytree(step(d, 1), d / "run" / "checkpoints" / "step_00000009")  # exact name, but step 1 inside


def _copies_intact(d: Path, outcome) -> None:
    for name in ("step_00000001.bak", "step_00000010_old_lr", "step_00000009"):
        files = {p: h for p, h in outcome.before.items() if p.startswith(f"run/checkpoints/{name}/")}
        assert files and all(outcome.after.get(p) == h for p, h in files.items()), name


def _resumed_from_step_2(d: Path, outcome) -> None:
    assert "resumed from" in outcome.stderr and "step_00000002 at step 2" in outcome.stderr, outcome.stderr[-2000:]
    assert "holds step 1" in outcome.stderr  # the exact-named copy was looked at and refused, saying why
    _copies_intact(d, outcome)


EXPLICIT = ["--resume", "run/checkpoints/step_00000002"]
CASES = [
    # the user's files in the run folder
    Case("config-folder-is-output-dir", train(out="."), setup=with_config(), intact=True, names=["c.yaml", "--output-dir"]),
    Case("users-config-yaml-in-output-dir", ["train", "--config", "config.yaml", "--output-dir", "."],
         setup=lambda d: write(d, {"config.yaml": TINY}), intact=True, names=["config.yaml", "did not write"]),
    Case("users-files-in-output-dir", train(), intact=True, names=["notes.txt", "demos.hdf5"],
         setup=with_config(lambda d: write(d, {"run/notes.txt": "mine", "run/demos.hdf5": b"\x89HDF"}))),
    Case("users-train-log", train(), intact=True, names=["train.log"],
         setup=with_config(lambda d: write(d, {"run/train.log": "my own notes\n"}))),
    Case("output-dir-is-a-file", train(), intact=True, names=["run", "is a file"],
         setup=with_config(lambda d: write(d, {"run": "a file"}))),
    Case("output-dir-below-a-file", train(out="f/run"), intact=True, names=["--output-dir", "f/run"],
         setup=with_config(lambda d: write(d, {"f": "a file"}))),
    Case("output-dir-name-too-long", train(out="r" * 300), setup=with_config(), names=["--output-dir"]),
    Case("output-dir-unwritable", train(out="/proc/atlas-hostile-run"), setup=with_config(),
         names=["--output-dir", "/proc/atlas-hostile-run"]),
    Case("fresh-run-over-a-run", train(), setup=trained_copy(), intact=True, names=["already holds a run", "--resume auto"]),
    Case("resume-with-users-file", train("--resume", "auto"), setup=trained_copy(lambda d: write(d, {"run/todo.md": "x"})),
         intact=True, names=["todo.md"]),
    # retention and --resume auto count only names Atlas writes, with a manifest that verifies
    Case("user-copies-never-pruned-or-resumed", train("--resume", "auto", "training.max_steps=4",
                                                       "training.checkpoints_total_limit=1"),
         rc=0, setup=trained_copy(user_copies), check=_resumed_from_step_2),
    Case("damaged-latest-falls-back", train("--resume", "auto", "training.max_steps=3"), rc=0,
         setup=trained_copy(manifest("[]")), check=lambda d, o: _in(o, "step_00000002 is not usable", "step_00000001")),
    # foreign or damaged checkpoints, named explicitly
    Case("manifest-empty-object", train(*EXPLICIT), setup=trained_copy(manifest("{}")), names=["manifest.json"]),
    Case("manifest-a-list", train(*EXPLICIT), setup=trained_copy(manifest("[1, 2]")), names=["manifest.json"]),
    Case("manifest-no-files", train(*EXPLICIT), setup=trained_copy(manifest('{"files": {}}')), names=["lists no files"]),
    Case("manifest-entry-without-size", train(*EXPLICIT), names=["manifest.json", "model.safetensors", "size"],
         setup=trained_copy(manifest('{"files": {"model.safetensors": {"sha256": "0"}}}'))),
    Case("manifest-invalid-json", train(*EXPLICIT), setup=trained_copy(manifest('{"files": ')), names=["manifest.json"]),
    Case("manifest-escapes-folder", train(*EXPLICIT), names=["outside the checkpoint folder"],
         setup=trained_copy(manifest('{"files": {"../../../../etc/hostname": {"size": 1, "sha256": "0"}}}'))),
    Case("state-unknown-key", train(*EXPLICIT), names=["trainer_state.json", "learning_rate_hack"],
         setup=trained_copy(edit_state(lambda s: json.dumps({**s, "learning_rate_hack": 1})))),
    Case("state-negative-step", train(*EXPLICIT), names=["trainer_state.json", "step"],
         setup=trained_copy(edit_state(lambda s: json.dumps({**s, "step": -5})))),
    Case("state-invalid-json", train(*EXPLICIT), names=["trainer_state.json", "JSON"], setup=trained_copy(edit_state("{"))),
    Case("state-a-list", train(*EXPLICIT), names=["trainer_state.json"], setup=trained_copy(edit_state("[2]"))),
    Case("resume-missing-folder", train("--resume", "nowhere"), setup=trained_copy(), names=["--resume", "nowhere"]),
    Case("resume-another-width", train("--resume", "auto", "model.hidden_dim=64"), setup=trained_copy(),
         names=["model.pretrained", "fusion.0.weight: [32, 22] in the checkpoint, [64, 22] configured"]),
    # security canary: a pickle that would run a command is refused, never executed
    Case("pickle-in-optimizer", train(*EXPLICIT), rc=1, setup=trained_copy(pickle_in_optimizer),
         names=["optimizer.pt", "weights_only"], absent=["pwned"]),
]


def _in(outcome, *texts: str) -> None:
    for text in texts:
        assert text in outcome.stderr, (text, outcome.stderr[-2000:])


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return outcomes_after_a_trained_run(tmp_path_factory.mktemp("hostile-run-folder"), TINY, TRAINED, CASES)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_run_folder(case, outcomes):
    judge(case, outcomes[case.id])


@pytest.mark.timeout(300)
def test_a_second_run_into_a_busy_folder_refuses_naming_the_first(tmp_path):
    import subprocess
    import sys
    import time

    from hostile_cli import child_env

    write(tmp_path, {"c.yaml": TINY})
    first = subprocess.Popen([sys.executable, "-m", "atlas.cli", *train("training.max_steps=3")], cwd=tmp_path,
                             env=child_env({"ATLAS_INJECT_HANG_AT_STEP": "2:60"}), stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / "metrics.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        rc, _, err, _, _ = run_atlas(train("--resume", "auto"), tmp_path)
        assert rc == 1 and f"PID {first.pid}" in err and "Traceback" not in err, err[-2000:]
    finally:
        first.kill()
        first.wait()
