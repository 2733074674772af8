"""report.md: the run's summary, plan, batch arithmetic, best checkpoint, plots and resolved config."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from atlas.report.plots import eval_rows
from atlas.report.run_data import RunData

PLOT_TITLES = {
    "loss": "Training loss (raw and smoothed) with validation loss",
    "val_loss": "Validation loss",
    "lr": "Learning rate per parameter group",
    "grad_norm": "Gradient norm",
    "samples_per_s": "Throughput",
    "success_rate": "Success rate per task during training",
}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "—" if value is None else str(value)


def batch_arithmetic(plan: dict) -> list[str]:
    """The effective batch written out, so a reader can check it against the config by hand."""
    needed = ("micro_batch_size", "gradient_accumulation_steps", "world_size", "effective_batch_size")
    if not all(isinstance(plan.get(k), int) and not isinstance(plan.get(k), bool) and plan[k] > 0 for k in needed):
        return ["plan.json is missing, incomplete or not Atlas's; no batch arithmetic."]
    micro, acc, world, eff = (plan[k] for k in needed)
    product = micro * acc * world
    lines = [f"- effective batch = micro_batch_size × gradient_accumulation_steps × world_size "
             f"= {micro} × {acc} × {world} = **{product}** samples per optimizer step"
             + ("" if product == eff else f" (plan.json says {eff}: they disagree)")]
    if "learning_rate" in plan:
        base, scaling = plan.get("base_learning_rate"), plan.get("lr_scaling", "none")
        base_batch = plan.get("base_batch_size")
        if scaling == "linear" and base and base_batch:
            how = f"{_fmt(base)} × {eff} / {base_batch}"
        elif scaling == "sqrt" and base and base_batch:
            how = f"{_fmt(base)} × sqrt({eff} / {base_batch})"
        else:
            how = f"{_fmt(base)} (lr_scaling={scaling})"
        lines.append(f"- learning rate = {how} = **{_fmt(plan['learning_rate'])}**")
    if isinstance(plan.get("samples_per_epoch"), int) and plan["samples_per_epoch"] > 0:
        n = plan["samples_per_epoch"]
        lines.append(f"- steps per epoch = ceil({n} samples / {eff}) = **{math.ceil(n / eff)}**")
    return lines


def _summary(run: RunData) -> list[str]:
    steps, losses = run.series("loss")
    lines = [f"- run folder: `{run.run_dir}`", f"- last logged step: {run.last_step}"]
    if losses:
        lines.append(f"- last training loss: {losses[-1]:.6g} (step {steps[-1]})")
    sps = run.series("samples_per_s")[1]
    if sps:
        lines.append(f"- throughput: median {sorted(sps)[len(sps) // 2]:.4g} samples/s")
    if run.best is not None:
        val = f"{run.best.val_loss:.6g}" if run.best.val_loss is not None else "not in metrics.jsonl"
        lines.append(f"- best checkpoint: `{run.best.path}` (step {run.best.step}, val_loss {val})")
    else:
        lines.append("- best checkpoint: none yet (no checkpoints/best)")
    if run.latest is not None:
        lines.append(f"- latest checkpoint: `{run.latest}`")
    if run.skipped_lines:
        lines.append(f"- {run.skipped_lines} unreadable metrics line(s) skipped (a run still writing leaves a partial last line)")
    return lines


def _eval_section(run: RunData, plots: dict[str, Path], report_dir: Path) -> list[str]:
    lines = []
    for name, data in run.evals.items():
        lines += [f"### {name}", ""]
        overall = data.get("success_rate")
        extras = [f"success rate {overall:.3f}" if isinstance(overall, (int, float)) else None,
                  f"mean episode length {data['mean_episode_length']:.1f}" if "mean_episode_length" in data else None,
                  f"wall time {data['wall_time_s']:.1f} s" if "wall_time_s" in data else None]
        if any(extras):
            lines += ["; ".join(e for e in extras if e), ""]
        lines += ["| task | success rate | 95% interval (Wilson) | successes / episodes |", "|---|---|---|---|"]
        for task, rate, low, high, k, n in eval_rows(data):
            lines.append(f"| {task} | {rate:.3f} | [{low:.3f}, {high:.3f}] | {k}/{n} |")
        stem = Path(name).stem
        if stem in plots:
            lines += ["", f"![{name}]({os.path.relpath(plots[stem], report_dir)})"]
        lines.append("")
    return lines


def doctor_section(doctor) -> list[str]:
    """The run doctor's ⚠️/❌ rows (a RunReport from atlas/planning/run_doctor), linking its full table."""
    from atlas.planning.run_doctor.findings import FAIL, ICONS, WARN

    rows = [f for f in doctor.findings if f.status in (FAIL, WARN)]
    lines = [f"- {ICONS[f.status]} **{f.symptom}**: {f.measured}. {f.cause}; change: {f.change} ({f.source})"
             for f in rows] or ["- ✅ no symptom found"]
    return lines + ["", "All rules, measured values and the Chinese text: [doctor.md](doctor.md) "
                    f"(`atlas doctor {doctor.run_dir} --lang zh`)."]


def render(run: RunData, plots: dict[str, Path], report_dir: Path, doctor=None) -> str:
    out = [f"# Run report: {run.run_dir.name}", "", "## Summary", "", *_summary(run), ""]
    if doctor is not None:
        out += ["## Doctor (atlas doctor RUN_DIR)", "", *doctor_section(doctor), ""]
    out += ["## Batch arithmetic", "", *batch_arithmetic(run.plan), ""]
    if run.plan:
        out += ["## Plan (plan.json)", "", "| field | value |", "|---|---|"]
        out += [f"| {k} | {_fmt(v)} |" for k, v in run.plan.items()]
        out.append("")
    out += ["## Training curves", ""]
    shown = [k for k in PLOT_TITLES if k in plots]
    if not shown:
        out += ["No metrics logged yet.", ""]
    for key in shown:
        out += [f"### {PLOT_TITLES[key]}", "", f"![{key}]({os.path.relpath(plots[key], report_dir)})", ""]
    if run.evals:
        out += ["## Evaluation", "", *_eval_section(run, plots, report_dir)]
    out += ["## Resolved config (config.yaml)", ""]
    out += ["```yaml", run.config_text.rstrip(), "```"] if run.config_text else ["config.yaml not found."]
    out.append("")
    return "\n".join(out)


def write_summary_json(run: RunData, path: Path) -> Path:
    """The same headline numbers as report.md, for scripts."""
    summary = {
        "last_step": run.last_step,
        "best_checkpoint": str(run.best.path) if run.best else None,
        "best_step": run.best.step if run.best else None,
        "best_val_loss": run.best.val_loss if run.best else None,
        "effective_batch_size": run.plan.get("effective_batch_size"),
        "skipped_metrics_lines": run.skipped_lines,
    }
    path.write_text(json.dumps(summary, indent=2))
    return path
