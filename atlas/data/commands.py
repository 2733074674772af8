"""`atlas stats DATASET [--task NAME] [--format F] [--json FILE]`: the normalization statistics training
would use, as a table per key (and cached, so the next training run starts without recomputing them)."""

from __future__ import annotations

import json
import sys

from atlas.data.config import DataConfig
from atlas.data.detect import detect_format
from atlas.data.errors import DataError
from atlas.data.registry import dataset_statistics, open_source, select_tasks
from atlas.data.stats import STAT_COLUMNS


def format_table(stats: dict) -> str:
    """One block per key: a row per dimension with every statistic."""
    lines = []
    for key, entry in stats.items():
        lines.append(f"{key} ({entry.get('count', '?')} rows, {len(entry['mean'])} dims)")
        lines.append("  dim " + "".join(f"{name:>12}" for name in STAT_COLUMNS))
        for dim in range(len(entry["mean"])):
            lines.append(f"  {dim:>3} " + "".join(f"{entry[name][dim]:>12.5g}" for name in STAT_COLUMNS))
    return "\n".join(lines)


def stats(args) -> int:
    try:
        fmt = args.data_format or detect_format(args.dataset)
        cfg = DataConfig(
            format=fmt, path=args.dataset, tasks=[args.task] if args.task else None, stats="task" if args.task else "dataset"
        )
        source = open_source(cfg)
        trained, selected = select_tasks(source, cfg.tasks)
        result, label, lines = dataset_statistics(source, cfg, trained, selected)
    except DataError as err:
        print(f"atlas stats: {err}", file=sys.stderr)
        return 1
    for line in getattr(source, "notes", []) + lines:
        print(line)
    print(f"format={fmt} episodes={len(selected)} tasks={', '.join(trained)} statistics of {label}")
    print(format_table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"format": fmt, "dataset": args.dataset, "selection": label, "stats": result}, handle, indent=2)
        print(f"wrote {args.json}")
    return 0
