"""`atlas report` on real run folders written by the training loop (tests/train_helpers.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from train_helpers import read_metrics, train_run

from atlas.cli import main as cli_main
from atlas.report.commands import write_report
from atlas.report.plots import smooth, wilson_interval
from atlas.report.run_data import load_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CURVES = ["loss.png", "val_loss.png", "lr.png", "grad_norm.png", "samples_per_s.png"]


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path.name} not written"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert len(data) > 1024, f"{path.name} is only {len(data)} bytes"


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("report") / "run"
    train_run(run_dir, ["training.max_steps=12", "training.val_interval=4", "training.checkpoint_interval=4",
                        "training.log_interval=2", "training.learning_rate=1e-3", "training.warmup_steps=3"])
    return run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(run_dir, dest, symlinks=True)
    shutil.rmtree(dest / "report", ignore_errors=True)
    return dest


def test_short_run_plots_and_best_checkpoint(short_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(short_run, tmp_path)
    report = write_report(run_dir)
    assert report == run_dir / "report" / "report.md"
    for name in CURVES:
        assert_png(run_dir / "report" / name)
    text = report.read_text()
    for name in CURVES:
        assert f"]({name})" in text, f"report.md does not embed {name}"

    best_target = (run_dir / "checkpoints" / "best").resolve()
    best_step = int(best_target.name.split("_")[-1])
    val = [r["val_loss"] for r in read_metrics(run_dir) if r.get("step") == best_step and "val_loss" in r]
    assert len(val) == 1
    assert all(val[0] <= r["val_loss"] for r in read_metrics(run_dir) if "val_loss" in r)
    best_line = next(line for line in text.splitlines() if line.startswith("- best checkpoint:"))
    assert str(best_target) in best_line and f"step {best_step}" in best_line
    assert f"val_loss {val[0]:.6g}" in best_line
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert summary["best_val_loss"] == pytest.approx(val[0]) and summary["best_step"] == best_step


def test_report_states_plan_arithmetic_and_config(short_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(short_run, tmp_path)
    text = write_report(run_dir).read_text()
    plan = json.loads((run_dir / "plan.json").read_text())
    m, a, w, e = (plan[k] for k in ("micro_batch_size", "gradient_accumulation_steps", "world_size",
                                    "effective_batch_size"))
    assert f"= {m} × {a} × {w} = **{e}**" in text
    assert (run_dir / "config.yaml").read_text().strip() in text
    groups = load_run(run_dir).keys_with_prefix("lr/")
    assert groups, "the loop logs lr/<group>"


def test_cli_report_and_missing_folder(short_run: Path, tmp_path: Path, capsys) -> None:
    run_dir = _copy(short_run, tmp_path)
    assert cli_main(["report", str(run_dir)]) == 0
    assert (run_dir / "report" / "report.md").is_file()
    assert cli_main(["report", str(tmp_path / "nope")]) == 2
    assert "no run folder" in capsys.readouterr().err


def test_two_step_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "two"
    train_run(run_dir, ["training.max_steps=2", "training.val_interval=2", "training.log_interval=1"])
    text = write_report(run_dir).read_text()
    for name in CURVES:
        assert_png(run_dir / "report" / name)
    assert "step 2, val_loss" in text


def test_truncated_last_line_of_a_live_run(short_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(short_run, tmp_path)
    (run_dir / "checkpoints" / "best").unlink()  # early in a run: no best yet
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 14, "loss": 0.12, "lr": 0.0')  # the writer is mid-line
    text = write_report(run_dir).read_text()
    assert_png(run_dir / "report" / "loss.png")
    assert "1 unreadable metrics line(s) skipped" in text
    assert "best checkpoint: none yet" in text
    assert load_run(run_dir).last_step == 12


def test_eval_bars_and_success_rate_curves(short_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(short_run, tmp_path)
    with open(run_dir / "metrics.jsonl", "a") as handle:
        for step, (a, b) in [(4, (0.2, 0.0)), (8, (0.6, 0.2)), (12, (0.8, 0.4))]:
            handle.write(json.dumps({"step": step, "success_rate": (a + b) / 2, "success_rate/reach-v3": a,
                                     "success_rate/push-v3": b}) + "\n")
    low, high = wilson_interval(3, 10)
    eval_json = {"success_rate": 0.65, "mean_episode_length": 87.5, "wall_time_s": 12.0, "tasks": {
        "reach-v3": {"success_rate": 1.0, "episodes": 10, "successes": 10, "ci95_low": 0.7225, "ci95_high": 1.0},
        "push-v3": {"success_rate": 0.3, "episodes": 10, "successes": 3},  # no interval: computed
    }}
    (run_dir / "eval.json").write_text(json.dumps(eval_json))
    (run_dir / "eval_step12.json").write_text(json.dumps(eval_json))
    text = write_report(run_dir).read_text()
    assert_png(run_dir / "report" / "success_rate.png")
    assert_png(run_dir / "report" / "eval.png")
    assert_png(run_dir / "report" / "eval_step12.png")
    assert f"| push-v3 | 0.300 | [{low:.3f}, {high:.3f}] | 3/10 |" in text
    assert "| reach-v3 | 1.000 | [0.723, 1.000] | 10/10 |" in text  # the file's own interval is kept


def test_wilson_interval_and_smoothing() -> None:
    low, high = wilson_interval(3, 10)
    assert low == pytest.approx(0.1078, abs=1e-4) and high == pytest.approx(0.6032, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert smooth([2.0] * 50) == pytest.approx([2.0] * 50)  # no ramp from zero
    noisy = [1.0 + (0.5 if i % 2 else -0.5) for i in range(100)]
    tail = smooth(noisy)[50:]
    assert max(tail) - min(tail) < 0.3
    assert smooth([float(i) for i in range(30)]) == pytest.approx(list(range(30)))  # a trend is kept, ends too


def test_smoothed_loss_tracks_a_falling_noisy_curve() -> None:
    """A loss falling 100x with +-30 % noise (what the quickstart logs): the smoothed line must run through
    the raw points, not above them (a lagging average lies above a falling curve everywhere), and be
    closer to the noise-free curve than the raw points are."""
    import math
    import random

    rng = random.Random(0)
    n = 100
    truth = [2.0 * math.exp(-4.6 * i / n) for i in range(n)]
    raw = [t * math.exp(rng.gauss(0.0, 0.3)) for t in truth]
    line = smooth(raw, log=True)
    above = sum(s > r for s, r in zip(line, raw)) / n
    assert 0.3 < above < 0.7, above
    err = sum(abs(math.log(s / t)) for s, t in zip(line, truth)) / n
    err_raw = sum(abs(math.log(r / t)) for r, t in zip(raw, truth)) / n
    assert err < 0.5 * err_raw, (err, err_raw)
    bias = sum(math.log(s / t) for s, t in zip(line, truth)) / n  # a lagging average: ~ +0.9 here
    assert abs(bias) < 0.05, bias
    ends = [abs(math.log(line[i] / truth[i])) for i in (*range(5), *range(n - 5, n))]
    assert sum(ends) / len(ends) < 0.25, ends  # the ends on the trend, not pulled toward the middle


def test_parameter_groups_sharing_a_schedule_are_one_labelled_line(tmp_path: Path) -> None:
    """The quickstart logs lr/default and lr/default.no_decay with identical values: drawn as two lines the
    second hides the first; one line labelled with both groups, and a separate line per other schedule."""
    from atlas.report.plots import distinct_schedules, plot_learning_rates
    from atlas.report.run_data import RunData

    metrics = [{"step": s, "lr/default": 1e-3 * s, "lr/default.no_decay": 1e-3 * s, "lr/language": 1e-4 * s}
               for s in range(1, 6)]
    run = RunData(run_dir=tmp_path, metrics=metrics)
    lines = distinct_schedules(run, run.keys_with_prefix("lr/"))
    assert [groups for groups, _, _ in lines] == [["default", "default.no_decay"], ["language"]]
    assert lines[1][1] == [1, 2, 3, 4, 5] and lines[1][2][-1] == pytest.approx(5e-4)
    assert_png(plot_learning_rates(run, tmp_path / "lr.png"))
