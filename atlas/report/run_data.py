"""Read a run folder (DESIGN.md "Run folder") into plain Python, tolerating a run that is still going.

A live run may be mid-write: the last line of metrics.jsonl can be cut short and checkpoints/best may
not exist yet, so every piece here is optional and a bad line is skipped, never fatal.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from atlas.engine.checkpoint import read_pointer
from atlas.engine.metrics import read_metrics


@dataclass
class BestCheckpoint:
    path: Path
    step: int | None
    val_loss: float | None


@dataclass
class RunData:
    run_dir: Path
    metrics: list[dict]
    skipped_lines: int = 0
    plan: dict = field(default_factory=dict)
    config_text: str = ""
    best: BestCheckpoint | None = None
    latest: Path | None = None
    evals: dict[str, dict] = field(default_factory=dict)  # file name -> eval.json content

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of every metrics line that carries a finite number under `key`."""
        steps, values = [], []
        for record in self.metrics:
            value = record.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                steps.append(int(record.get("step", len(steps) + 1)))
                values.append(float(value))
        return steps, values

    def keys_with_prefix(self, prefix: str) -> list[str]:
        """Metric names such as `lr/<group>` or `success_rate/<task>`, in first-seen order."""
        seen: dict[str, None] = {}
        for record in self.metrics:
            for key in record:
                if key.startswith(prefix):
                    seen.setdefault(key, None)
        return list(seen)

    @property
    def last_step(self) -> int:
        return max((int(r["step"]) for r in self.metrics if isinstance(r.get("step"), int)), default=0)


def _step_of(checkpoint: Path) -> int | None:
    state = checkpoint / "trainer_state.json"
    if state.is_file():
        try:
            return int(json.loads(state.read_text())["step"])
        except (ValueError, KeyError, json.JSONDecodeError):
            pass
    digits = checkpoint.name.rsplit("_", 1)[-1]
    return int(digits) if digits.isdigit() else None


def find_best(run_dir: Path, metrics: list[dict]) -> BestCheckpoint | None:
    """The checkpoint `best` points at, with the val_loss logged at its step."""
    path = read_pointer(run_dir / "checkpoints", "best")
    if path is None:
        return None
    step = _step_of(path)
    val_loss = None
    for record in metrics:
        if record.get("step") == step and isinstance(record.get("val_loss"), (int, float)):
            val_loss = float(record["val_loss"])
    return BestCheckpoint(path=path, step=step, val_loss=val_loss)


def read_evals(run_dir: Path) -> dict[str, dict]:
    """Every eval*.json at the top of the run folder that has a `tasks` mapping."""
    out = {}
    for path in sorted(run_dir.glob("eval*.json")):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            continue
        if isinstance(data, dict) and isinstance(data.get("tasks"), dict):
            out[path.name] = data
    return out


def load_run(run_dir: str | Path) -> RunData:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run folder at {run_dir}")
    metrics, skipped = read_metrics(run_dir / "metrics.jsonl")
    plan = {}
    if (run_dir / "plan.json").is_file():
        try:
            plan = json.loads((run_dir / "plan.json").read_text())
        except json.JSONDecodeError:
            plan = {}
    config = run_dir / "config.yaml"
    return RunData(
        run_dir=run_dir,
        metrics=metrics,
        skipped_lines=skipped,
        plan=plan,
        config_text=config.read_text() if config.is_file() else "",
        best=find_best(run_dir, metrics),
        latest=read_pointer(run_dir / "checkpoints", "latest"),
        evals=read_evals(run_dir),
    )
