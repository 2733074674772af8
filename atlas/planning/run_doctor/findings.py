"""A run doctor finding (one row of the table) and the rule registry: adding a rule is adding a function.

Each rule is `rule(records, context) -> RunFinding`, registered with `@run_rule`; its docstring names the
source it applies (a seed document 000-004 or a measured figure in benchmarks/RESULTS.md) and why its
threshold is where it is. A rule without the records it needs returns status `n/a` and says what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from atlas.planning.doctor import FAIL, ICON, OK, WARN

NA = "n/a"
ICONS = {**ICON, NA: "➖"}
__all__ = ["FAIL", "NA", "OK", "WARN", "ICONS", "RunFinding", "RULES", "run_rule"]


@dataclass
class RunFinding:
    rule: str  # the rule's function name: stable, for scripts and tests
    symptom: str
    measured: str  # what the run's records show (numbers with their units)
    status: str  # ok / warn / fail / n/a
    cause: str
    change: str  # what to change, with the config key and value
    source: str  # the seed rule (or measured figure) the finding applies
    symptom_zh: str = ""
    cause_zh: str = ""
    change_zh: str = ""
    measured_zh: str = ""

    def text(self, lang: str) -> tuple[str, str, str, str]:
        """(symptom, measured, cause, change) in `lang` ("en" or "zh")."""
        if lang == "zh":
            return (self.symptom_zh or self.symptom, self.measured_zh or self.measured, self.cause_zh or self.cause,
                    self.change_zh or self.change)
        return self.symptom, self.measured, self.cause, self.change

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunContext:
    """What the rules get besides the run: the one-process run to compare scaling with (`--baseline`)."""

    baseline: object | None = None  # RunRecords of the baseline run


Rule = Callable[..., RunFinding]
RULES: list[Rule] = []


def run_rule(func: Rule) -> Rule:
    """Register a rule; rules run in the order they were registered (the order of the table)."""
    RULES.append(func)
    return func


def finding(rule: Rule, status: str, measured: str | tuple[str, str], en: tuple[str, str, str],
            zh: tuple[str, str, str], source: str) -> RunFinding:
    """A finding from `(symptom, cause, change)` in English and Chinese; `measured` is one text (numbers
    and config keys only) or `(English, Chinese)`."""
    measured_en, measured_zh = (measured, measured) if isinstance(measured, str) else measured
    return RunFinding(rule.__name__, en[0], measured_en, status, en[1], en[2], source, zh[0], zh[1], zh[2],
                      measured_zh)


def not_judged(rule: Rule, symptom: tuple[str, str], missing: tuple[str, str], source: str) -> RunFinding:
    """The row of a rule whose records the run does not have: `missing` says which (en, zh)."""
    return finding(rule, NA, "-", (symptom[0], missing[0], "-"), (symptom[1], missing[1], "-"), source)
