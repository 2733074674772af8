"""PNG plots of a run, drawn with matplotlib's object API on the Agg canvas.

`Figure` + `FigureCanvasAgg` instead of pyplot: no global backend switch, no display needed, and
nothing leaks between plots when `atlas report` runs inside a longer process (tests, notebooks).
Every function returns the written path, or None when the run has nothing to draw yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from atlas.report.run_data import RunData
from atlas.sim.wilson import wilson_interval


def smooth(values: Sequence[float], half_width: int | None = None, log: bool = False) -> list[float]:
    """A centred local linear fit: point i is the least-squares line through values[i-k .. i+k], read at i.

    Centred, so a falling loss is not drawn late (a one-sided average, TensorBoard's EMA included, lags
    the curve and lies above a falling one for the whole run). Near the ends the window is cut to the
    points there are, and the fitted line (not a plain mean) keeps the first and last points on the
    trend instead of pulling them toward the middle. `log`: fitted in log space, so on a log axis the
    line runs through the middle of the noise band. half_width defaults to 5 % of the points (at least 2)."""
    n = len(values)
    if n < 3:
        return list(values)
    k = half_width if half_width is not None else max(2, n // 20)
    use_log = log and all(v > 0 for v in values)
    ys = [math.log(v) for v in values] if use_log else [float(v) for v in values]
    out = []
    for i in range(n):
        window = range(max(0, i - k), min(n, i + k + 1))
        xm = sum(window) / len(window)
        ym = sum(ys[j] for j in window) / len(window)
        sxx = sum((j - xm) ** 2 for j in window)
        slope = sum((j - xm) * (ys[j] - ym) for j in window) / sxx if sxx else 0.0
        fit = ym + slope * (i - xm)
        out.append(math.exp(fit) if use_log else fit)
    return out


def _figure(title: str, ylabel: str, xlabel: str = "optimizer step") -> tuple[Figure, object]:
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _marker(n: int) -> str | None:
    """Points stay visible on a run with only a few logged steps."""
    return "o" if n <= 30 else None


def plot_lines(run: RunData, keys: list[str], path: Path, title: str, ylabel: str, log_y: bool = False) -> Path | None:
    fig, ax = _figure(title, ylabel)
    drawn = 0
    for key in keys:
        steps, values = run.series(key)
        if not steps:
            continue
        ax.plot(steps, values, marker=_marker(len(steps)), label=key)
        drawn += 1
    if not drawn:
        return None
    if log_y and all(v > 0 for key in keys for v in run.series(key)[1]):
        ax.set_yscale("log")
    if drawn > 1:
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_loss(run: RunData, path: Path) -> Path | None:
    """Training loss, raw (faint) and smoothed, with validation loss on the same axes when logged."""
    steps, values = run.series("loss")
    val_steps, val_values = run.series("val_loss")
    if not steps and not val_steps:
        return None
    fig, ax = _figure("loss", "loss")
    log_y = all(v > 0 for v in values + val_values)
    if steps:
        ax.plot(steps, values, alpha=0.35, marker=_marker(len(steps)), label="train loss (raw)")
        ax.plot(steps, smooth(values, log=log_y), linewidth=2, label="train loss (centred moving average)")
    if val_steps:
        ax.plot(val_steps, val_values, marker="o", label="val_loss")
    if log_y:
        ax.set_yscale("log")
    ax.legend(fontsize="small")
    return _save(fig, path)


def distinct_schedules(run: RunData, keys: list[str]) -> list[tuple[list[str], list[int], list[float]]]:
    """(groups, steps, values) per distinct learning-rate series among `keys`, the groups that follow it in
    first-seen order (groups that differ only in weight decay share a schedule)."""
    schedules: dict[tuple, list[str]] = {}
    for key in keys:
        steps, values = run.series(key)
        if steps:
            schedules.setdefault((tuple(steps), tuple(values)), []).append(key.split("/", 1)[-1])
    return [(groups, list(steps), list(values)) for (steps, values), groups in schedules.items()]


def plot_learning_rates(run: RunData, path: Path) -> Path | None:
    """One line per distinct schedule of the parameter groups (`lr/<group>`), labelled with every group that
    follows it (one line hidden under another reads as a missing group), or the scheduled `lr` when groups
    were not logged."""
    keys = run.keys_with_prefix("lr/") or ["lr"]
    schedules = distinct_schedules(run, keys)
    if not schedules:
        return None
    fig, ax = _figure("learning rate per parameter group", "learning rate")
    for groups, steps, values in schedules:
        ax.plot(steps, values, marker=_marker(len(steps)), label=", ".join(groups))
    if len(keys) > 1:
        ax.legend(fontsize="small", title="parameter groups")
    return _save(fig, path)


def plot_success_rates(run: RunData, path: Path) -> Path | None:
    keys = [k for k in ["success_rate", *run.keys_with_prefix("success_rate/")] if run.series(k)[0]]
    if not keys:
        return None
    fig, ax = _figure("success rate during training", "success rate")
    for key in keys:
        steps, values = run.series(key)
        ax.plot(steps, values, marker="o", linewidth=2.5 if key == "success_rate" else 1.2,
                label="mean" if key == "success_rate" else key.split("/", 1)[1])
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize="small")
    return _save(fig, path)


def eval_rows(data: dict) -> list[tuple[str, float, float, float, int, int]]:
    """(task, success_rate, ci low, ci high, successes, episodes) per task of one eval.json."""
    rows = []
    for task, t in data.get("tasks", {}).items():
        n = int(t.get("episodes", 0))
        k = int(t.get("successes", round(t.get("success_rate", 0.0) * n)))
        rate = float(t.get("success_rate", k / n if n else 0.0))
        low, high = t.get("ci95_low"), t.get("ci95_high")
        if low is None or high is None:
            low, high = wilson_interval(k, n)
        rows.append((task, rate, float(low), float(high), k, n))
    return rows


def plot_eval(data: dict, path: Path, title: str) -> Path | None:
    """Per-task success-rate bars with Wilson 95% intervals as error bars."""
    rows = eval_rows(data)
    if not rows:
        return None
    fig = Figure(figsize=(max(5, 1.0 + 0.9 * len(rows)), 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = list(range(len(rows)))
    rates = [r[1] for r in rows]
    err = [[max(0.0, r[1] - r[2]) for r in rows], [max(0.0, r[3] - r[1]) for r in rows]]
    ax.bar(x, rates, yerr=err, capsize=4, color="tab:blue", alpha=0.8)
    for xi, r in zip(x, rows):
        ax.text(xi, min(1.0, r[3]) + 0.02, f"{r[4]}/{r[5]}", ha="center", fontsize="small")
    ax.set_xticks(x)
    ax.set_xticklabels([r[0] for r in rows], rotation=30, ha="right", fontsize="small")
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("success rate (Wilson 95% interval)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def write_plots(run: RunData, out_dir: Path) -> dict[str, Path]:
    """Every plot the run has data for, keyed by a short name used in report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    made = {
        "loss": plot_loss(run, out_dir / "loss.png"),
        "val_loss": plot_lines(run, ["val_loss"], out_dir / "val_loss.png", "validation loss", "val_loss"),
        "lr": plot_learning_rates(run, out_dir / "lr.png"),
        "grad_norm": plot_lines(run, ["grad_norm"], out_dir / "grad_norm.png", "gradient norm (before clipping)",
                                "grad_norm", log_y=True),
        "samples_per_s": plot_lines(run, ["samples_per_s"], out_dir / "samples_per_s.png", "throughput",
                                    "samples/s"),
        "success_rate": plot_success_rates(run, out_dir / "success_rate.png"),
    }
    for name, data in run.evals.items():
        stem = Path(name).stem
        made[stem] = plot_eval(data, out_dir / f"{stem}.png", f"{name}: success rate per task")
    return {k: v for k, v in made.items() if v is not None}
