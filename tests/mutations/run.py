"""Seeded bugs that the suite must catch: apply each to a copy of the tree, run its tests, expect red.

    python -m tests.mutations.run            # every case in tests/mutations/cases/
    python -m tests.mutations.run NAME ...   # the named cases (file names without .json)
    python -m tests.mutations.run --list     # names and the claim each one guards
    python -m tests.mutations.run --baseline NAME   # also run the tests on the unmutated copy (must be green)

A case is one JSON file, `tests/mutations/cases/<name>.json`:
    {"claim": "the README/RESULTS claim it guards", "file": "atlas/....py",
     "old": "exact text (must occur exactly once)", "new": "the bug", "tests": ["tests/...py::test_name"]}

For each case the tree is copied to a temporary folder (the files git knows, tracked or untracked but not
ignored), `old` is replaced by `new` in `file`, and `python -m pytest -q -x <tests>` runs in the copy with
PYTHONPATH set to it. The case is `red` (good: the suite caught the bug) when pytest reports failed tests;
`green` (the mutation survived) when they pass; `error` when pytest could not run them (no such test,
a collection error, the time limit). Exit status 1 when any case is not red or any case file is malformed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CASES = Path(__file__).resolve().parent / "cases"
FIELDS = {"claim": str, "file": str, "old": str, "new": str, "tests": list}
SKIP_DIRS = {".git", "runs", "data", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}
PYTEST_TESTS_FAILED = 1  # pytest's exit status when tests ran and some failed


class CaseError(ValueError):
    """A case file that cannot be applied: its message names the file and the field."""


@dataclass(frozen=True)
class Case:
    name: str
    claim: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    case: str
    tests: int
    result: str  # red | green | error
    seconds: float
    detail: str


def load_case(path: Path) -> Case:
    """One case file, checked field by field (every field present, of its type, nothing else)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CaseError(f"{path}: not a readable JSON file ({err})") from err
    if not isinstance(data, dict):
        raise CaseError(f"{path}: expected a JSON object with fields {sorted(FIELDS)}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise CaseError(f"{path}: unknown field(s) {unknown}; a case has exactly {sorted(FIELDS)}")
    for field, kind in FIELDS.items():
        if field not in data:
            raise CaseError(f"{path}: missing field {field!r}")
        if not isinstance(data[field], kind) or (not data[field] and field != "new"):  # "new" may delete `old`
            raise CaseError(f"{path}: field {field!r} must be a non-empty {kind.__name__}")
    if not all(isinstance(t, str) and t.startswith("tests/") for t in data["tests"]):
        raise CaseError(f"{path}: field 'tests' must list pytest ids under tests/, e.g. tests/x/test_y.py::test_z")
    if data["old"] == data["new"]:
        raise CaseError(f"{path}: 'new' equals 'old': the case seeds no bug")
    return Case(path.stem, data["claim"], data["file"], data["old"], data["new"], tuple(data["tests"]))


def apply_case(case: Case, root: Path) -> None:
    """Replace the case's `old` by `new` in its file under `root`; `old` must occur there exactly once."""
    target = root / case.file
    if not target.is_file():
        raise CaseError(f"case {case.name}: field 'file': no file {case.file} in the tree")
    text = target.read_text()
    count = text.count(case.old)
    if count != 1:
        raise CaseError(f"case {case.name}: field 'old' occurs {count} times in {case.file}, expected exactly once")
    target.write_text(text.replace(case.old, case.new))


def tree_files(repo: Path) -> list[Path]:
    """The files of the working tree, relative: what git tracks plus untracked files it does not ignore."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return [p.relative_to(repo) for p in repo.rglob("*") if p.is_file() and not SKIP_DIRS & set(p.relative_to(repo).parts)]
    return [Path(name) for name in out.decode().split("\0") if name and (repo / name).is_file()]


def copy_tree(repo: Path, dest: Path) -> None:
    for rel in tree_files(repo):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, dest / rel)


def run_tests(root: Path, tests: tuple[str, ...], timeout: float) -> tuple[int | None, str]:
    """pytest on `tests` inside `root` (its exit status, None on the time limit) and its output's tail."""
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"over the {timeout:.0f} s limit"
    return proc.returncode, proc.stdout + proc.stderr


def _first_failure(output: str) -> str:
    found = re.search(r"^FAILED (\S+)", output, re.MULTILINE)
    return found.group(1) if found else ""


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


def check_case(case: Case, timeout: float, baseline: bool = False) -> Outcome:
    """Copy the tree, (optionally run the tests green first), seed the bug, run them again: red expected."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"atlas-mutation-{case.name}-") as tmp:
        root = Path(tmp)
        copy_tree(REPO, root)
        if baseline:
            rc, out = run_tests(root, case.tests, timeout)
            if rc != 0:
                return Outcome(case.name, len(case.tests), "error", time.perf_counter() - start,
                               f"not green before the mutation (pytest {rc}): {_last_line(out)}")
        apply_case(case, root)
        rc, out = run_tests(root, case.tests, timeout)
    seconds = time.perf_counter() - start
    if rc == PYTEST_TESTS_FAILED:
        return Outcome(case.name, len(case.tests), "red", seconds, _first_failure(out) or _last_line(out))
    if rc == 0:
        return Outcome(case.name, len(case.tests), "green", seconds, "the mutation survived: " + _last_line(out))
    return Outcome(case.name, len(case.tests), "error", seconds, f"pytest {rc}: {_last_line(out)}")


def all_cases(folder: Path = CASES) -> list[Path]:
    return sorted(folder.glob("*.json"))


def table(outcomes: list[Outcome]) -> str:
    width = max([len("case"), *(len(o.case) for o in outcomes)])
    rows = [f"{'case':<{width}}  tests  result  seconds  detail"]
    rows += [f"{o.case:<{width}}  {o.tests:>5}  {o.result:<6}  {o.seconds:>7.1f}  {o.detail}" for o in outcomes]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutations.run", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="case names (default: every case in tests/mutations/cases/)")
    parser.add_argument("--list", action="store_true", help="list the cases and the claims they guard")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per case's pytest run")
    parser.add_argument("--baseline", action="store_true", help="first check the tests are green unmutated")
    parser.add_argument("--cases", type=Path, default=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    paths = all_cases(args.cases)
    if args.names:
        known = {p.stem: p for p in paths}
        missing = [n for n in args.names if n not in known]
        if missing:
            print(f"no case named {missing} in {args.cases} (known: {sorted(known)})", file=sys.stderr)
            return 1
        paths = [known[n] for n in args.names]
    try:
        cases = [load_case(p) for p in paths]
    except CaseError as err:
        print(f"malformed case: {err}", file=sys.stderr)
        return 1
    if args.list:
        for case in cases:
            print(f"{case.name}: {case.claim} [{case.file}; {len(case.tests)} test(s)]")
        return 0
    outcomes = []
    for case in cases:
        try:
            outcomes.append(check_case(case, args.timeout, args.baseline))
        except CaseError as err:
            outcomes.append(Outcome(case.name, len(case.tests), "error", 0.0, str(err)))
        print(f"{outcomes[-1].case}: {outcomes[-1].result} ({outcomes[-1].seconds:.1f} s)", file=sys.stderr, flush=True)
    print(table(outcomes))
    survived = [o.case for o in outcomes if o.result != "red"]
    if survived:
        print(f"\n{len(survived)} of {len(outcomes)} case(s) not red: {', '.join(survived)}")
        return 1
    print(f"\nall {len(outcomes)} case(s) red: every seeded bug fails a test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
