"""`atlas doctor RUN_DIR`: diagnose a run (finished or still going) from what it logged.

Each rule (rules_*.py, registered in findings.RULES) reads the run's records (records.py) and returns one
row: the symptom as measured, its likely cause, the change to make and the seed rule it applies.
Exit code 1 when any row is ❌, as for `atlas doctor CONFIG`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from atlas.planning.run_doctor.findings import FAIL, RULES, RunContext, RunFinding
from atlas.planning.run_doctor.records import RunRecords, is_run_folder, load_records

# the rule modules, in the order of the table: the loss first, then time, memory, processes, resumes
RULE_MODULES = ("rules_loss", "rules_time", "rules_memory", "rules_ranks", "rules_resume")
for _name in RULE_MODULES:
    importlib.import_module(f"atlas.planning.run_doctor.{_name}")

__all__ = ["RunReport", "diagnose", "is_run_folder"]


@dataclass
class RunReport:
    run_dir: str
    last_step: int
    findings: list[RunFinding]
    baseline: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if any(f.status == FAIL for f in self.findings) else 0

    def to_dict(self) -> dict:
        return {"run_dir": self.run_dir, "last_step": self.last_step, "baseline": self.baseline,
                "findings": [f.to_dict() for f in self.findings], "notes": self.notes, "exit_code": self.exit_code}


def diagnose_records(records: RunRecords, baseline: RunRecords | None = None) -> RunReport:
    context = RunContext(baseline=baseline)
    notes = []
    if records.run.skipped_lines:
        notes.append(f"{records.run.skipped_lines} unreadable metrics line(s) skipped (a run still writing)")
    if records.summary is None:
        notes.append("no 'done:' line in train.log: the run is still going, or stopped early")
    return RunReport(str(records.run_dir), records.run.last_step, [rule(records, context) for rule in RULES],
                     str(baseline.run_dir) if baseline else None, notes)


def diagnose(run_dir: str | Path, baseline: str | Path | None = None) -> RunReport:
    """Every rule over the run folder (and the baseline run folder, for scaling)."""
    return diagnose_records(load_records(run_dir), load_records(baseline) if baseline else None)
