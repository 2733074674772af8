"""`atlas doctor RUN_DIR` on real runs of the loop through the real CLI, each engineered to show one symptom
(an LR 100x too high, 100x too low, val_interval 1, zero workers with a slow reader, a forced OOM back-off,
a resumed run whose schedule changed, a 2-process run with one rank slowed): the matching rule flags it
and no other rule does; a healthy run has no ❌."""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import pytest
from train_helpers import TINY, torchrun

from atlas.cli import main as cli_main
from atlas.planning.run_doctor import RULE_MODULES, diagnose
from atlas.planning.run_doctor.findings import FAIL, NA, OK, RULES, WARN
from atlas.report.commands import write_report

# a policy that learns this synthetic task in 150 steps at LR 1e-2 (the healthy run); validation and
# checkpointing only at the end, so the symptom runs differ from it in one thing each
COMMON = ["data.num_episodes=16", "data.episode_length=24", "data.batch_size=16", "model.hidden_dim=64",
          "training.max_steps=150", "training.log_interval=10", "training.val_interval=150",
          "training.warmup_steps=10", "training.learning_rate=1e-2"]
RUNS = {
    "healthy": ([], {}),
    "lr_high": (["training.learning_rate=1.0", "training.warmup_steps=60", "training.lr_scheduler=constant"], {}),
    "lr_low": (["training.learning_rate=1e-4"], {}),
    "val_every_step": (["training.val_interval=1"], {}),
    "slow_reader": (["data_loading.num_workers=0"], {"ATLAS_INJECT_SLOW_READ_MS": "3"}),
    "oom": (["memory_optimization.dynamic_batch_size=true"], {"ATLAS_INJECT_OOM_AT_STEP": "50"}),
    "clip_too_low": (["training.max_grad_norm=0.05"], {}),
    "nonfinite": ([], {"ATLAS_INJECT_NAN_AT_STEP": "60:2"}),
    "save_every_5": (["training.checkpoint_interval=5", "training.checkpoints_total_limit=2"], {}),
}
TIMEOUT = 600


@contextlib.contextmanager
def environment(extra: dict):
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def train(run_dir: Path, overrides: list[str], env: dict | None = None, resume: str | None = None) -> Path:
    """`atlas train` through the CLI's own entry point, in this process (imports paid once for all runs)."""
    config = run_dir.parent / "empty.yaml"
    config.write_text("{}\n")
    args = ["train", "--config", str(config), "--output-dir", str(run_dir)] + (["--resume", resume] if resume else [])
    with environment(env or {}):
        assert cli_main(args + TINY + COMMON + overrides) == 0
    return run_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root, made = tmp_path_factory.mktemp("rundoctor"), {}

    def get(name: str) -> Path:
        if name not in made:
            overrides, env = RUNS[name]
            made[name] = train(root / name, overrides, env)
        return made[name]

    return get


def doctor(capsys, run_dir: Path, *flags: str) -> tuple[int, dict]:
    """`atlas doctor RUN_DIR --format json` through the CLI: (exit code, the report)."""
    capsys.readouterr()
    code = cli_main(["doctor", str(run_dir), "--format", "json", *flags])
    return code, json.loads(capsys.readouterr().out)


def flagged(report: dict) -> dict[str, str]:
    return {f["rule"]: f["status"] for f in report["findings"] if f["status"] in (WARN, FAIL)}


def finding(report: dict, rule: str) -> dict:
    return next(f for f in report["findings"] if f["rule"] == rule)


@pytest.mark.timeout(TIMEOUT)
def test_healthy_run_has_no_fail_and_every_rule_answers(run, capsys):
    code, report = doctor(capsys, run("healthy"))
    assert code == 0 and not [f for f in report["findings"] if f["status"] == FAIL], report
    assert flagged(report) == {}, flagged(report)
    assert [f["rule"] for f in report["findings"]] == [r.__name__ for r in RULES]
    assert finding(report, "loss_not_falling")["status"] == OK  # judged, not skipped
    assert finding(report, "input_bound")["status"] == OK
    assert finding(report, "gpu_memory")["status"] == NA  # a CPU run has no GPU memory to judge


@pytest.mark.timeout(TIMEOUT)
def test_lr_100x_too_high_is_a_climbing_loss(run, capsys):
    code, report = doctor(capsys, run("lr_high"))
    assert flagged(report) == {"loss_diverging": FAIL} and code == 1
    assert "training.learning_rate" in finding(report, "loss_diverging")["change"]


@pytest.mark.timeout(TIMEOUT)
def test_lr_100x_too_low_is_a_loss_that_never_fell(run, capsys):
    code, report = doctor(capsys, run("lr_low"))
    assert flagged(report) == {"loss_not_falling": FAIL} and code == 1
    row = finding(report, "loss_not_falling")
    assert "never fell far" in row["cause"] and "raise training.learning_rate" in row["change"]
    assert re.search(r"lowest reached by step \d+ at LR \S+", row["measured"])  # the step and LR of the stall


@pytest.mark.timeout(TIMEOUT)
def test_val_interval_1_is_validation_cost(run, capsys):
    code, report = doctor(capsys, run("val_every_step"))
    assert flagged(report) == {"validation_cost": FAIL} and code == 1
    row = finding(report, "validation_cost")
    assert "val_interval=1" in row["measured"] and "seed 001 for" in row["measured"]
    assert int(re.search(r"val_interval to >= (\d+)", row["change"]).group(1)) > 1


@pytest.mark.timeout(TIMEOUT)
def test_zero_workers_with_a_slow_reader_is_input_bound(run, capsys):
    code, report = doctor(capsys, run("slow_reader"))
    assert flagged(report) == {"input_bound": FAIL} and code == 1
    workers = int(re.search(r"num_workers=(\d+)", finding(report, "input_bound")["change"]).group(1))
    assert workers >= 2  # loading takes longer than computing: more than one worker to keep up


@pytest.mark.timeout(TIMEOUT)
def test_forced_oom_backoff_is_reported_with_its_cost(run, capsys):
    code, report = doctor(capsys, run("oom"))
    assert flagged(report) == {"oom_backoffs": WARN} and code == 0
    row = finding(report, "oom_backoffs")
    assert "first at step 50: micro-batch 16→8, accumulation 1→2" in row["measured"]
    assert "samples/s" in row["measured"] and "data.batch_size=8" in row["change"]


@pytest.mark.timeout(TIMEOUT)
def test_clip_threshold_below_the_gradients_scale_is_clipping(run, capsys):
    code, report = doctor(capsys, run("clip_too_low"))
    assert flagged(report) == {"grad_clipping": WARN} and code == 0
    assert "max_grad_norm=0.05 in 14 of 14 windows" in finding(report, "grad_clipping")["measured"]


@pytest.mark.timeout(TIMEOUT)
def test_skipped_non_finite_steps_are_a_warning(run, capsys):
    code, report = doctor(capsys, run("nonfinite"))
    assert flagged(report) == {"loss_diverging": WARN} and code == 0
    row = finding(report, "loss_diverging")
    assert "2 non-finite step(s) skipped" in row["measured"] and "first at step 60" in row["cause"]


@pytest.mark.timeout(TIMEOUT)
def test_a_save_every_5_steps_is_checkpoint_cost(run, capsys):
    code, report = doctor(capsys, run("save_every_5"))
    assert flagged(report) == {"checkpoint_cost": FAIL} and code == 1
    assert "29 periodic save(s) of 30" in finding(report, "checkpoint_cost")["measured"]


@pytest.mark.timeout(TIMEOUT)
def test_resume_with_a_changed_schedule(tmp_path, capsys):
    run_dir = train(tmp_path / "resumed", [], {"ATLAS_STOP_AT_STEP": "80"})
    train(run_dir, ["training.learning_rate=5e-3"], resume="auto")
    code, report = doctor(capsys, run_dir)
    assert flagged(report) == {"resumed_schedule_change": WARN} and code == 0
    assert "learning_rate 0.01 -> 0.005" in finding(report, "resumed_schedule_change")["measured"]


@pytest.mark.timeout(TIMEOUT)
def test_every_rule_speaks_chinese_and_markdown_renders(run, capsys):
    report = diagnose(run("val_every_step"))
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for row in report.findings:
        assert cjk.search(row.symptom_zh) and cjk.search(row.cause_zh), row.rule
        if row.status in (WARN, FAIL):
            assert cjk.search(row.change_zh), row.rule
        if row.status != NA:
            assert cjk.search(row.measured_zh) or row.measured_zh == row.measured == "none", row.rule
    capsys.readouterr()
    assert cli_main(["doctor", str(run("val_every_step")), "--format", "markdown", "--lang", "zh"]) == 1
    out = capsys.readouterr().out
    assert "| 症状 | 测量值 | 状态 |" in out and "❌" in out and "验证占用大量训练时间" in out


@pytest.mark.timeout(TIMEOUT)
def test_baseline_of_the_same_config_judges_the_speed_up(run, capsys):
    """The slow reader against the healthy run of the same config: same process count, far fewer samples/s."""
    _, report = doctor(capsys, run("slow_reader"), "--baseline", str(run("healthy")))
    row = finding(report, "scaling_efficiency")
    assert row["status"] == FAIL and "1 vs 1 processes" in row["measured"]
    _, alone = doctor(capsys, run("healthy"))
    assert finding(alone, "scaling_efficiency")["status"] == NA


@pytest.mark.timeout(TIMEOUT)
def test_report_links_the_doctors_findings(run):
    path = write_report(run("val_every_step"))
    text = path.read_text()
    assert "## Doctor" in text and "validation takes a large share of wall time" in text
    assert (path.parent / "doctor.md").is_file() and "(doctor.md)" in text


def test_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    assert cli_main(["doctor", str(tmp_path)]) == 2  # bad input, as for every command: one line, exit 2
    err = capsys.readouterr().err
    assert "is not a run folder" in err and "Traceback" not in err


def test_rule_modules_all_register_rules():
    assert {r.__module__.rsplit(".", 1)[1] for r in RULES} == set(RULE_MODULES)
    assert all(r.__doc__ and re.search(r"seed 00[0-4]|RESULTS\.md|planning/", r.__doc__, re.I) for r in RULES)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
def test_two_processes_one_rank_slowed(tmp_path, capsys):
    """torchrun --nproc_per_node=2 on CPU (gloo) with rank 1's reads slowed: rank_imbalance names rank 1."""
    run_dir = tmp_path / "two"
    torchrun(run_dir, COMMON + ["training.max_steps=80"], env={"ATLAS_INJECT_SLOW_READ_MS": "4:1"}, timeout=TIMEOUT)
    code, report = doctor(capsys, run_dir)
    assert flagged(report) == {"rank_imbalance": FAIL} and code == 1, flagged(report)
    row = finding(report, "rank_imbalance")
    assert "rank 1 waits for its own input" in row["cause"] and "rank0" in row["measured"]


@pytest.mark.parametrize(("peak", "status", "words"), [(70.0, WARN, "at the edge"), (20.0, WARN, "data.batch_size=64"),
                                                       (50.0, OK, "uses the memory well")])
def test_gpu_memory_against_the_budget(tmp_path, peak, status, words):
    """No GPU on this machine: a CUDA run's records in the loop's own format (plan.json's memory_plan as
    run_plan.py writes it, gpu_peak_* as window.py logs them), written here, judged by the real rule."""
    plan = {"micro_batch_size": 16, "gradient_accumulation_steps": 4, "world_size": 1, "effective_batch_size": 64,
            "memory_plan": {"budget_gb": 72.0, "configured": {"micro_batch_size": 16, "memory": {"total": peak * 0.9}},
                            "suggested": {"micro_batch_size": 64, "gradient_accumulation_steps": 1}}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    lines = [{"step": s, "loss": 1.0 / s, "samples_per_s": 100.0, "gpu_peak_allocated_gib": peak * 0.9,
              "gpu_peak_reserved_gib": peak} for s in range(10, 70, 10)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    row = next(f for f in diagnose(tmp_path).findings if f.rule == "gpu_memory")
    assert row.status == status and (words in row.cause or words in row.change), row
    assert f"peak reserved {peak:.3g} GiB of 72 GiB budget" in row.measured
