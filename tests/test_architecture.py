"""docs/ARCHITECTURE.md is the map of the code: every path it names in backquotes exists in the tree."""

from __future__ import annotations

import re

from train_helpers import REPO


def test_every_path_the_architecture_map_names_exists():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:atlas|tests|benchmarks|docs)/[\w./]*)`", text))
    assert len(named) > 30  # the map names modules, not just the top folders
    missing = sorted(p for p in named if not (REPO / p.rstrip("/")).exists())
    assert not missing, f"docs/ARCHITECTURE.md names paths that are not in the tree: {missing}"


def test_every_package_folder_is_on_the_map():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    folders = sorted(str(p.relative_to(REPO)) for p in (REPO / "atlas").iterdir()
                     if p.is_dir() and (p / "__init__.py").exists())
    assert all(f"`{folder}/`" in text for folder in folders), folders
