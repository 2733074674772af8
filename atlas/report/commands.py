"""`atlas report RUN_DIR`: plots and report.md under RUN_DIR/report/ (safe to run while training goes on)."""

from __future__ import annotations

import sys
from pathlib import Path

from atlas.planning.run_doctor import diagnose, is_run_folder
from atlas.planning.run_doctor.render import render_run_report
from atlas.report.markdown import render, write_summary_json
from atlas.report.plots import write_plots
from atlas.report.run_data import load_run


def write_report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/report/{report.md, doctor.md, summary.json, *.png}; returns the path of report.md.
    doctor.md is `atlas doctor RUN_DIR --format markdown`; report.md lists its ⚠️/❌ rows and links it."""
    run = load_run(run_dir)
    report_dir = run.run_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    plots = write_plots(run, report_dir)
    doctor = diagnose(run.run_dir) if is_run_folder(run.run_dir) else None
    if doctor is not None:
        (report_dir / "doctor.md").write_text(render_run_report(doctor, "markdown") + "\n")
    path = report_dir / "report.md"
    path.write_text(render(run, plots, report_dir, doctor))
    write_summary_json(run, report_dir / "summary.json")
    return path


def report(args) -> int:
    try:
        path = write_report(args.run_dir)
    except FileNotFoundError as err:
        print(f"atlas report: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    print(f"report written to {path}")
    return 0
