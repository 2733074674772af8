"""Several `bash quickstart.sh` runs side by side: per-task success of each run, min-max, and the time per phase.

Each run folder is what quickstart.sh leaves in `$RUN`: `eval.json` (atlas eval), `quickstart_times.txt`
(the phase times the script prints) and `config.yaml` (the training seed). The script checks the
issue's bar on every run (mean >= 98 %, every task >= 90 %, whole command <= 20 min) and prints the
markdown tables that README.md and benchmarks/RESULTS.md keep.

    python benchmarks/quickstart_runs.py LABEL=RUN_DIR [LABEL=RUN_DIR ...]

e.g. `python benchmarks/quickstart_runs.py "seed 0=/tmp/qs0/runs/quickstart" "seed 1=/tmp/qs1/runs/quickstart"`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

MEAN_BAR, TASK_BAR, MINUTES_BAR = 0.98, 0.90, 20.0
PHASES = ("install", "collect", "train", "evaluate", "report")


def phase_seconds(run: Path) -> dict[str, int]:
    """{phase: seconds, total: seconds} from quickstart_times.txt ("... install=7s collect=153s ... total=860s")."""
    text = (run / "quickstart_times.txt").read_text()
    return {name: int(value) for name, value in re.findall(r"(\w+)=(\d+)s", text)}


def read_run(label: str, run: Path) -> dict:
    summary = json.loads((run / "eval.json").read_text())
    tasks = {task: row["success_rate"] for task, row in summary["tasks"].items()}
    return {"label": label, "tasks": tasks, "mean": summary["success_rate"], "episodes": summary["episodes"],
            "times": phase_seconds(run)}


def passes(run: dict) -> bool:
    return (run["mean"] >= MEAN_BAR and min(run["tasks"].values()) >= TASK_BAR
            and run["times"].get("total", 0) <= MINUTES_BAR * 60)


def success_table(runs: list[dict]) -> str:
    tasks = list(runs[0]["tasks"])
    head = "| task | " + " | ".join(run["label"] for run in runs) + " | min–max |"
    lines = [head, "|---" * (len(runs) + 2) + "|"]
    for task in tasks:
        values = [run["tasks"][task] for run in runs]
        cells = " | ".join(f"{v:.0%}" for v in values)
        lines.append(f"| {task} | {cells} | {min(values):.0%}–{max(values):.0%} |")
    means = [run["mean"] for run in runs]
    lines.append("| **mean** | " + " | ".join(f"**{v:.1%}**" for v in means) + f" | {min(means):.1%}–{max(means):.1%} |")
    return "\n".join(lines)


def time_table(runs: list[dict]) -> str:
    lines = ["| phase | " + " | ".join(run["label"] for run in runs) + " |", "|---" * (len(runs) + 1) + "|"]
    for phase in (*PHASES, "total"):
        cells = " | ".join(f"{run['times'][phase] / 60:.1f} min" if phase in run["times"] else "–" for run in runs)
        lines.append(f"| {phase} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    args = parser.parse_args(argv)
    runs = []
    for item in args.runs:
        label, sep, path = item.partition("=")
        if not sep:
            parser.error(f"{item!r}: expected LABEL=RUN_DIR")
        try:
            runs.append(read_run(label, Path(path)))
        except (OSError, ValueError, KeyError) as err:
            print(f"quickstart_runs: {path}: not a finished quickstart run ({err})", file=sys.stderr)
            return 2
    print(success_table(runs), "\n", sep="")
    print(time_table(runs), "\n", sep="")
    for run in runs:
        worst = min(run["tasks"], key=run["tasks"].get)
        print(f"{run['label']}: mean {run['mean']:.1%}, lowest {worst} {run['tasks'][worst]:.0%}, "
              f"{run['times'].get('total', 0) / 60:.1f} min: {'meets' if passes(run) else 'MISSES'} the bar "
              f"(mean >= {MEAN_BAR:.0%}, every task >= {TASK_BAR:.0%}, <= {MINUTES_BAR:.0f} min)")
    return 0 if all(passes(run) for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
