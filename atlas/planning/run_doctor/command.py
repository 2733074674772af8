"""`atlas doctor RUN_DIR [--baseline RUN_DIR] [--format table|markdown|json] [--lang zh|en]`."""

from __future__ import annotations

import argparse

from atlas.planning.run_doctor import diagnose
from atlas.planning.run_doctor.render import render_run_report


def run_folder_doctor(args: argparse.Namespace) -> int:
    report = diagnose(args.target, getattr(args, "baseline", None))
    print(render_run_report(report, args.format, getattr(args, "lang", "en")))
    return report.exit_code
