"""YAML as users mean it: `no`, `off`, `yes`, `on` stay words.

PyYAML follows YAML 1.1, where `mixed_precision: no` loads as the boolean False and a field whose valid
values are words ("no", "bf16", "fp16") then refuses it. YAML 1.2 (and every YAML a user copies from a
modern tool) treats only true/false as booleans. `WordsLoader` is SafeLoader with the 1.2 rule; boolean
fields still accept the words, since pydantic reads "no"/"off"/"yes"/"on" as booleans.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class WordsLoader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's: true/false in their three spellings, nothing else."""


WordsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
WordsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str) -> Any:
    """Parse one YAML document with YAML 1.2 booleans (raises yaml.YAMLError like yaml.safe_load)."""
    return yaml.load(text, Loader=WordsLoader)  # noqa: S506 - WordsLoader is a SafeLoader
