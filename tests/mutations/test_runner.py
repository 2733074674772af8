"""The mutation runner itself: malformed cases are refused with a message naming the field, and one real
seeded bug (a shared crop) turns its test red end to end. The full set runs with `python -m tests.mutations.run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mutations.run import CASES, REPO, CaseError, all_cases, apply_case, load_case

GOOD = {"claim": "c", "file": "atlas/data/augment.py", "old": "x", "new": "y", "tests": ["tests/data/test_transforms.py"]}


def _case(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "case.json"
    path.write_text(json.dumps({**GOOD, **fields}))
    return path


@pytest.mark.parametrize(("fields", "message"), [
    ({"tests": []}, "field 'tests' must be a non-empty list"),
    ({"old": 3}, "field 'old' must be a non-empty str"),
    ({"new": "x"}, "'new' equals 'old'"),
    ({"test": ["tests/a.py"]}, "unknown field"),
    ({"tests": ["a.py::t"]}, "pytest ids under tests/"),
])
def test_a_malformed_case_is_refused_naming_the_field(tmp_path, fields, message):
    with pytest.raises(CaseError, match=message):
        load_case(_case(tmp_path, **fields))


def test_a_missing_field_and_broken_json_are_refused(tmp_path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps({k: v for k, v in GOOD.items() if k != "file"}))
    with pytest.raises(CaseError, match="missing field 'file'"):
        load_case(path)
    path.write_text("{not json")
    with pytest.raises(CaseError, match="not a readable JSON"):
        load_case(path)


def test_old_text_must_occur_exactly_once(tmp_path):
    (tmp_path / "atlas").mkdir()
    (tmp_path / "atlas/m.py").write_text("a = 1\nb = 1\n")
    for old, count in (("c = 1", 0), ("= 1", 2)):
        case = load_case(_case(tmp_path, file="atlas/m.py", old=old, new="= 2"))
        with pytest.raises(CaseError, match=f"occurs {count} times in atlas/m.py"):
            apply_case(case, tmp_path)
    apply_case(load_case(_case(tmp_path, file="atlas/m.py", old="a = 1", new="a = 2")), tmp_path)
    assert (tmp_path / "atlas/m.py").read_text() == "a = 2\nb = 1\n"


def test_every_shipped_case_loads_and_applies_to_this_tree(tmp_path):
    """Each case file is well formed and its `old` text is still in the code exactly once (a refactor that
    moves the code must move the case too)."""
    assert all_cases(), f"no cases in {CASES}"
    for path in all_cases():
        case = load_case(path)
        target = tmp_path / case.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((REPO / case.file).read_text())
        apply_case(case, tmp_path)
        for test in case.tests:
            assert (REPO / test.split("::")[0]).is_file(), (path.name, test)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_seeded_bug_turns_its_test_red_end_to_end():
    proc = subprocess.run([sys.executable, "-m", "tests.mutations.run", "crop_shared_by_cameras"], cwd=REPO,
                          capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("crop_shared_by_cameras"))
    assert row.split()[2] == "red" and "test_crop_is_shared_by_the_history_frames_of_a_sample" in row, proc.stdout
