"""What a run folder logged, read once for every rule: metrics.jsonl (through the report's reader, which
uses the project's one metrics reader), plan.json, config.yaml and the messages of train.log.

A run still going is read as far as it got: every piece is optional and a rule that lacks its piece
says so instead of judging.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from atlas.config.errors import ConfigError
from atlas.report.run_data import RunData, load_run

LOG_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) (?P<message>.*)$")


class RunFolderError(ConfigError):
    """The doctor was pointed at a folder that is not a run folder: bad input, one line, exit 2."""


def is_run_folder(path: str | Path) -> bool:
    """A folder `atlas train --output-dir` wrote: it holds metrics.jsonl or plan.json."""
    path = Path(path)
    return path.is_dir() and ((path / "metrics.jsonl").is_file() or (path / "plan.json").is_file())


@dataclass
class RunRecords:
    run: RunData
    config: dict = field(default_factory=dict)
    log: list[str] = field(default_factory=list)  # train.log messages (timestamp and level cut off)

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def plan(self) -> dict:
        return self.run.plan

    @property
    def training_lines(self) -> list[dict]:
        """metrics.jsonl's training lines (they carry `loss`), in step order."""
        return [r for r in self.run.metrics if _number(r.get("loss")) and isinstance(r.get("step"), int)]

    def setting(self, dotted: str, default=None):
        """A key of the run's resolved config.yaml (`training.val_interval`)."""
        node = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def messages(self, pattern: str) -> list[re.Match]:
        """Every train.log message matching `pattern` (a regular expression searched in the message)."""
        compiled = re.compile(pattern)
        return [m for m in (compiled.search(line) for line in self.log) if m]

    @property
    def summary(self) -> dict | None:
        """The `done: {...}` summary of the run's last segment (None while it runs or after a crash)."""
        done = self.messages(r"^done: (\{.*\})$")
        if not done:
            return None
        try:
            return json.loads(done[-1].group(1))
        except json.JSONDecodeError:
            return None

    def phase_seconds(self) -> dict[str, float]:
        """Wall seconds per loop phase (data_wait, forward_backward, optimizer, step, validation, evaluation,
        checkpoint). A finished single-segment run has them exactly in its `done:` summary (with the final
        validation and checkpoint, which come after the last metrics line); otherwise they are summed over
        the metrics lines (each holds ms per step over its window)."""
        summary = self.summary
        if summary and isinstance(summary.get("time_s"), dict) and len(self.segments()) <= 1:
            return {k: float(v) for k, v in summary["time_s"].items() if _number(v) and k != "loop"}
        totals: dict[str, float] = {}
        previous = 0
        for record in self.training_lines:
            steps = record["step"] - previous if record["step"] > previous else 1
            previous = record["step"]
            for key, value in record.items():
                if key.startswith("time/") and key.endswith("_ms") and key.count("/") == 1 and _number(value):
                    name = key[len("time/"):-len("_ms")]
                    totals[name] = totals.get(name, 0.0) + value * steps / 1000.0
        return totals

    def segments(self) -> list[int]:
        """Indexes into train.log where each training segment (first run, then each resume) starts."""
        return [i for i, line in enumerate(self.log) if line.startswith("samples per epoch ")]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_log(path: Path) -> list[str]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = LOG_LINE.match(line)
        out.append(match.group("message") if match else line)
    return out


def load_records(run_dir: str | Path) -> RunRecords:
    """The run folder's records; RunFolderError (one line) when it is not a run folder."""
    run_dir = Path(run_dir)
    if not is_run_folder(run_dir):
        raise RunFolderError(f"{run_dir} is not a run folder: expected metrics.jsonl or plan.json in it "
                             "(the --output-dir of atlas train)")
    run = load_run(run_dir)
    try:
        config = yaml.safe_load(run.config_text) if run.config_text else {}
    except yaml.YAMLError:
        config = {}
    return RunRecords(run, config if isinstance(config, dict) else {}, read_log(run_dir / "train.log"))
