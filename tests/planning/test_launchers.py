"""Each launcher read on its own terms: one realistic command per tool and one per trap of issue 22, through
the real `atlas doctor` CLI (a subprocess, JSON out) for every tool, plus in-process readings of the traps.

Each test asserts the tool recognised, per-device and effective batch, the warmup the run really gets, the LR,
the model and its parameter count, and that no other tool's rule fires (each tool's rules cite its own files).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atlas.planning.doctor import FAIL, OK, WARN, run_doctor
from atlas.planning.launch import parse_launch_script
from atlas.planning.render import display_width, render_report
from atlas.planning.setup import setup_from_script

FIXTURES = Path(__file__).parent / "fixtures" / "launchers"
ROOT = Path(__file__).resolve().parents[2]
# Words only one tool's rules use (their citations): a rule of another tool would bring its marker along.
MARKERS = {
    "rdt": ["diffusers'", "train/train.py:211"],
    "lerobot": ["schedulers.py:145", "LeRobot uses the policy's LR"],
    "openpi-jax": ["XLA_PYTHON_CLIENT_MEM_FRACTION", "scripts/train.py:198"],
    "openpi-pytorch": ["train_pytorch.py:353", "train_pytorch.py trains in full bfloat16"],
    "openvla-oft": ["finetune.py:1078", "num_steps_before_decay="],
    "hf-trainer": ["optimization.py:1014"],
}


def doctor_json(name: str, *extra: str, cwd: Path = FIXTURES) -> dict:
    """`atlas doctor FIXTURE --format json` in a subprocess, this tree first on the path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "atlas.cli", "doctor", str(FIXTURES / name), "--format", "json",
                           "--gpu-memory", "80", *extra], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return json.loads(proc.stdout)


def finding(report: dict, parameter: str) -> dict:
    return next(f for f in report["findings"] if f["parameter"] == parameter)


def assert_only_own_rules(report: dict, tool: str) -> None:
    text = json.dumps(report["findings"])
    for other, markers in MARKERS.items():
        if other == tool:
            continue
        for marker in markers:
            assert marker not in text, f"{other}'s rule ({marker}) fired for a {tool} command"


@pytest.mark.slow
def test_lerobot_pi05_two_processes_cli():
    """Issue 22's command: --batch_size=32 per process on 2 processes, pi0.5 (~3.3 B), its own recipe."""
    r = doctor_json("lerobot_pi05_2gpu.sh")
    assert (r["tool"], r["tool_label"]) == ("lerobot", "LeRobot lerobot-train")
    assert r["recipe"] == "lerobot-pi05-libero" and "policy_type=pi05" in r["recipe_reason"]
    run = r["run"]
    assert (run["micro_batch_size"], run["world_size"], run["effective_batch_size"]) == (32, 2, 64)
    assert run["warmup_steps_real"] == 1000 and run["learning_rate"] == 2.5e-5
    assert r["parameters"]["preset"] == "pi05" and abs(r["parameters"]["total"] / 3.3e9 - 1) < 0.05
    assert "lr_warmup_steps" not in json.dumps(r) and "pi0-libero" not in json.dumps(r)
    assert r["memory"][0]["status"] == FAIL  # 3.35 B fully trained at 32 per GPU without checkpointing: no
    assert "--batch_size=" in r["corrected"] and "--train_batch_size" not in r["corrected"]
    assert_only_own_rules(r, "lerobot")


def test_lerobot_short_run_scales_warmup_down():
    """--steps=1000 < scheduler_decay_steps=30000: LeRobot warms up for int(1000 x 1000/30000) = 33 steps."""
    setup = setup_from_script((FIXTURES / "lerobot_smolvla_short.sh").read_text())
    assert setup.tool == "lerobot" and setup.launch.training.launcher == "python"
    assert setup.values["warmup_steps"] == 1000 and setup.values["effective_warmup_steps"] == 33
    assert setup.values["learning_rate"] == 1e-4 and setup.effective_batch_size == 64
    rule = next(r for r in setup.reading.rules if r.parameter == "warmup (real)")
    assert rule.status == WARN and "1000 -> 33" == rule.yours and "schedulers.py:145-152" in rule.why
    assert setup.reading.model == "smolvla" and setup.reading.identifiers == {"policy_type": "smolvla"}


def test_lerobot_does_not_take_pi0_recipe_for_pi05_or_prefix():
    """Recipes match the policy type exactly: pi05 never takes a pi0 recipe, pi0_fast has none of its own."""
    from atlas.planning.recipes import recipe_for_tool

    assert recipe_for_tool("lerobot", {"policy_type": "pi05"})[0].name == "lerobot-pi05-libero"
    assert recipe_for_tool("lerobot", {"policy_type": "pi0_fast"})[0].name == "none"
    assert recipe_for_tool("openpi-jax", {"config": "pi05_libero_extra"})[0].name == "none"
    assert recipe_for_tool("openpi-jax", {"config": "pi0_libero"})[0].name == "openpi-pi0-libero"


@pytest.mark.slow
def test_openpi_pi05_jax_cli():
    """pi05_libero: global batch 256 over 8 GPUs of one JAX process = 32 per device; warmup 10k, flat 5e-5."""
    r = doctor_json("openpi_pi05_jax.sh")
    assert (r["tool"], r["recipe"]) == ("openpi-jax", "openpi-pi05-libero")
    run = r["run"]
    assert (run["micro_batch_size"], run["world_size"], run["effective_batch_size"]) == (32, 8, 256)
    assert run["warmup_steps_real"] == 10_000 and run["learning_rate"] == 5e-5
    assert run["lr_scheduler"] == "warmup_then_flat" and finding(r, "ema")["status"] == OK
    assert finding(r, "XLA_PYTHON_CLIENT_MEM_FRACTION")["status"] == OK
    assert r["memory"][0]["budget_gb"] == pytest.approx(0.9 * 80, abs=0.01)  # JAX's fraction, not Atlas's 0.95
    assert finding(r, "num_workers")["yours"] == "2 x 1"  # one process drives all 8 GPUs
    assert r["parameters"]["preset"] == "pi05" and abs(r["parameters"]["total"] / 3.3e9 - 1) < 0.05
    assert_only_own_rules(r, "openpi-jax")


@pytest.mark.slow
def test_openpi_pytorch_uneven_global_batch_cli():
    """Trap: batch_size is global; 30 over 4 torchrun processes floors to 7 each (28), pi0 ~3.3 B."""
    r = doctor_json("openpi_pi0_pytorch_uneven.sh")
    assert (r["tool"], r["recipe"]) == ("openpi-pytorch", "openpi-pi0-libero")
    run = r["run"]
    assert (run["micro_batch_size"], run["world_size"], run["effective_batch_size"]) == (7, 4, 28)
    assert run["warmup_steps_real"] == 1000 and run["learning_rate"] == 2.5e-5
    assert finding(r, "batch_size / devices")["status"] == FAIL and r["exit_code"] == 1
    assert r["parameters"]["preset"] == "pi0" and abs(r["parameters"]["total"] / 3.3e9 - 1) < 0.05
    assert all(o["gradient_accumulation_steps"] == 1 for o in r["options"])  # openpi cannot accumulate
    assert "--batch_size=28" in r["corrected"] or "--batch_size=" in r["corrected"]
    assert "pi0_libero" in r["corrected"].split()  # the config name stays the first argument
    assert_only_own_rules(r, "openpi-pytorch")


@pytest.mark.slow
def test_openvla_oft_libero_cli():
    """OFT's LIBERO command: 8 per GPU x 8 = 64, LoRA r32 on OpenVLA-7B; fits 80 GB (OFT: ~62 GB at 8)."""
    r = doctor_json("oft_libero_8gpu.sh")
    assert (r["tool"], r["recipe"]) == ("openvla-oft", "openvla-oft-libero")
    run = r["run"]
    assert (run["micro_batch_size"], run["world_size"], run["effective_batch_size"]) == (8, 8, 64)
    assert run["warmup_steps_real"] == 0 and run["learning_rate"] == 5e-4 and run["max_steps"] == 150005
    assert finding(r, "lora_rank")["status"] == OK
    p = r["parameters"]
    assert p["preset"] == "openvla-7b-lora" and abs(p["total"] / 7.54e9 - 1) < 0.05 and p["trainable"] < 0.05 * p["total"]
    assert r["memory"][0]["status"] in (OK, WARN) and 45 < r["memory"][0]["total_gb"] < 76
    assert_only_own_rules(r, "openvla-oft")


def test_openpi_jax_without_memory_fraction_plans_75_percent():
    """JAX preallocates 75 % unless XLA_PYTHON_CLIENT_MEM_FRACTION says otherwise (openpi README.md:160-163)."""
    setup = setup_from_script("uv run scripts/train.py pi0_libero_low_mem_finetune --exp-name=x --batch-size=16\n", 2)
    assert setup.tool == "openpi-jax" and setup.world_size == 2 and setup.values["micro_batch_size"] == 8
    assert setup.reading.model == "pi0-lora" and setup.values["ema"] is None
    rule = next(r for r in setup.reading.rules if r.parameter == "XLA_PYTHON_CLIENT_MEM_FRACTION")
    assert rule.status == WARN and "memory_optimization.max_memory_usage=0.75" in setup.reading.planning
    assert not any(r.parameter == "precision" for r in setup.reading.rules)  # the PyTorch trainer's rule


def test_openvla_oft_warmup_undoes_decay():
    setup = setup_from_script((FIXTURES / "oft_warmup_kills_decay.sh").read_text())
    assert setup.tool == "openvla-oft" and setup.effective_batch_size == 4 * 2 * 2
    assert setup.values["effective_warmup_steps"] == 1000
    rule = next(r for r in setup.reading.rules if r.parameter == "lr decay")
    assert rule.status == WARN and "finetune.py:1078-1082" in rule.why


@pytest.mark.slow
def test_hf_trainer_constant_warmup_and_zero3_json_cli():
    r = doctor_json("hf_trainer_constant.sh")
    assert (r["tool"], r["tool_label"], r["recipe"]) == ("hf-trainer", "HF Trainer script", "none")
    run = r["run"]
    assert (run["micro_batch_size"], run["world_size"], run["effective_batch_size"]) == (4, 4, 64)
    assert run["warmup_steps_set"] == 300 and run["warmup_steps_real"] == 0 and run["learning_rate"] == 2e-5
    assert finding(r, "lr_scheduler")["status"] == FAIL
    assert r["parameters"]["preset"] is None and r["memory"] == []  # an arbitrary model: not planned, not "fits"
    assert "--lr_scheduler_type=constant_with_warmup" in r["corrected"]
    assert_only_own_rules(r, "hf-trainer")
    setup = setup_from_script((FIXTURES / "hf_trainer_constant.sh").read_text().replace(
        "ds_zero3.json", str(FIXTURES / "ds_zero3.json")))
    assert setup.values["strategy"] == "zero3" and "stage 3" in setup.origin["strategy"]


def test_hf_trainer_plain_python_is_data_parallel_over_visible_gpus():
    setup = setup_from_script("CUDA_VISIBLE_DEVICES=0,1 python train.py --per_device_train_batch_size 8\n")
    assert setup.tool == "hf-trainer" and setup.world_size == 2 and setup.effective_batch_size == 16


@pytest.mark.slow
def test_rdt_scale_lr_cli():
    """Trap: --scale_lr turns 1e-4 into 1e-4 x 1 x 32 x 8 = 2.56e-2 (RDT train/train.py:211-214)."""
    r = doctor_json("rdt_scale_lr.sh")
    assert (r["tool"], r["recipe"]) == ("rdt", "rdt-1b-finetune")
    run = r["run"]
    assert (run["micro_batch_size"], run["world_size"], run["effective_batch_size"]) == (32, 8, 256)
    assert run["learning_rate"] == pytest.approx(2.56e-2) and run["warmup_steps_real"] == 5000
    assert finding(r, "scale_lr")["status"] == FAIL and finding(r, "learning_rate")["status"] == FAIL
    assert "--scale_lr" not in r["corrected"]
    assert r["parameters"]["preset"] == "rdt-1b"
    assert_only_own_rules(r, "rdt")


@pytest.mark.slow
def test_unknown_script_is_not_read_as_rdt_cli():
    r = doctor_json("unknown_train.sh")
    assert (r["tool"], r["recipe"]) == ("unknown", "none")
    assert r["run"]["effective_batch_size"] is None and r["memory"] == []
    assert finding(r, "CUDA_VISIBLE_DEVICES")["status"] == FAIL and finding(r, "processes")["yours"] == "4"
    assert sorted(r["unknown_flags"]) == ["--bs", "--lr", "--warmup"]
    assert_only_own_rules(r, "unknown")


def test_atlas_launch_reads_the_config_with_the_launchers_processes(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("model:\n  preset: atlas-tiny\ndata:\n  batch_size: 4\ntraining:\n  learning_rate: 3.0e-4\n")
    setup = setup_from_script(f"torchrun --nproc_per_node=2 -m atlas.train --config {config}\n")
    assert setup.kind == "yaml" and setup.tool_label == "Atlas" and setup.world_size == 2
    assert setup.values["micro_batch_size"] == 4


def test_recognisers_pick_each_tool():
    cases = {
        "lerobot-train --policy.type=pi0 --batch_size=8\n": "lerobot",
        "python -m lerobot.scripts.lerobot_train --policy.type=smolvla\n": "lerobot",
        "uv run scripts/train.py pi0_fast_libero --exp-name=x\n": "openpi-jax",
        "torchrun --nproc_per_node=2 scripts/train_pytorch.py pi0_libero --exp_name x\n": "openpi-pytorch",
        "torchrun --nproc-per-node 1 vla-scripts/finetune.py --batch_size 2\n": "openvla-oft",
        "python finetune_hf.py --per_device_train_batch_size 2\n": "hf-trainer",
        "python main.py --train_batch_size=4\n": "rdt",
        "python main.py --foo 1\n": "unknown",
        "python train.py --lr 3e-4\n": "unknown",
    }
    for text, tool in cases.items():
        assert parse_launch_script(text).training.tool == tool, text


def test_oft_draccus_booleans_take_values():
    cmd = parse_launch_script("torchrun vla-scripts/finetune.py --image_aug True --use_proprio False --batch_size 4\n")
    assert cmd.training.args == {"image_aug": "True", "use_proprio": "False", "batch_size": "4"}


def test_table_fits_100_columns_markdown_and_json_complete():
    setup = setup_from_script((FIXTURES / "hf_trainer_constant.sh").read_text())
    report = run_doctor(setup, cpu_cores=8)
    table = render_report(report, "table")
    prose = table.split("Corrected command")[0]  # the paste-able command keeps its own lines
    assert max(display_width(line) for line in prose.splitlines()) <= 100
    why = next(f.why for f in report.findings if f.parameter == "lr_scheduler")
    assert why in render_report(report, "markdown")  # markdown keeps each cell whole
    assert json.loads(render_report(report, "json"))["findings"][1]["why"] == report.findings[1].why
    zh = render_report(report, "table", "zh").split("修正后的命令")[0]
    assert max(display_width(line) for line in zh.splitlines()) <= 100
