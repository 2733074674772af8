"""tests/extras.py: a missing optional extra skips a test, unless the environment requires the extra (CI)."""

from __future__ import annotations

import re

import pytest
from extras import EXTRA_MODULES, require_extra, required_extras

MISSING = "atlas_no_such_module_for_the_extras_test"


def test_a_missing_extra_skips_by_default(monkeypatch):
    monkeypatch.delenv("ATLAS_REQUIRE_EXTRAS", raising=False)
    monkeypatch.delenv("ATLAS_REQUIRE_DEEPSPEED", raising=False)
    with pytest.raises(pytest.skip.Exception, match=rf"{MISSING} is not importable.*pip install -e '\.\[deepspeed\]'"):
        require_extra("deepspeed", MISSING)


@pytest.mark.parametrize("env", [{"ATLAS_REQUIRE_EXTRAS": "libero, deepspeed"}, {"ATLAS_REQUIRE_DEEPSPEED": "1"}])
def test_a_required_extra_that_is_missing_fails(monkeypatch, env):
    monkeypatch.delenv("ATLAS_REQUIRE_EXTRAS", raising=False)  # CI sets it: this test decides what is required
    monkeypatch.delenv("ATLAS_REQUIRE_DEEPSPEED", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert "deepspeed" in required_extras()
    with pytest.raises(pytest.fail.Exception, match=r"the deepspeed extra is required here .*pip install -e '\.\[deepspeed\]'"):
        require_extra("deepspeed", MISSING)
    with pytest.raises(pytest.skip.Exception):  # an extra nobody required still only skips
        require_extra("hf", MISSING)


def test_an_installed_extra_is_returned():
    assert require_extra("test", "pytest") is pytest


def test_ci_requires_every_extra_it_installs():
    """.ci/run's ATLAS_REQUIRE_EXTRAS names each extra its `pip install -e ".[...]"` lines install that a test imports."""
    from train_helpers import REPO

    ci = (REPO / ".ci" / "run").read_text()
    required = set(re.search(r"ATLAS_REQUIRE_EXTRAS=(\S+)", ci).group(1).split(","))
    installed = {e for group in re.findall(r'-e "\.\[([^\]]+)\]"', ci) for e in group.split(",")}
    assert {"deepspeed", "libero", "sim"} <= installed
    assert installed & set(EXTRA_MODULES) <= required
