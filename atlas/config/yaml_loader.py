"""The YAML reader for configs and overrides: PyYAML's safe loader with three guards.

- A key written twice in one mapping (`learning_rate:` twice, or a second `training:` section) is an error
  naming the key and both lines; YAML itself would silently keep the last one.
- Alias expansion is bounded: eight lines of nested anchors ("billion laughs") expand to billions of nodes
  once a config is copied or validated, so a document whose expanded size passes MAX_NODES is refused.
- `1e-4` and `5e3` are floats (YAML 1.2), as users mean; a quoted `"2.0"` stays the string it is.
- Booleans are YAML 1.2's (true/false only): YAML 1.1 reads `mixed_precision: no` as False and a field whose
  valid values are words then refuses it; `no`, `off`, `yes`, `on` stay words (boolean fields still accept
  them: pydantic reads them as booleans).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from atlas.config.errors import ConfigError

MAX_NODES = 200_000  # a full resolved config is ~300 nodes; generous for generated mixtures and lists
MAX_DEPTH = 64


class AtlasLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and documents that expand past MAX_NODES."""

    def get_single_node(self):  # compose, then measure before anything is constructed
        try:
            node = super().get_single_node()
        except RecursionError:
            raise ConfigError(f"the YAML is nested more deeply than Python can read (limit {MAX_DEPTH} levels)") from None
        if node is not None:
            size, depth = expanded_size(node)
            if size > MAX_NODES:
                raise ConfigError(
                    f"the YAML expands to more than {MAX_NODES:,} values through its aliases (*name); "
                    "a config this large is refused (a 'billion laughs' document?)"
                )
            if depth > MAX_DEPTH:
                raise ConfigError(f"the YAML is nested {depth} levels deep; configs are at most {MAX_DEPTH}")
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicate_keys(loader: AtlasLoader, node: yaml.MappingNode) -> None:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: the constructor reports it
            continue
        if first is not None:
            where = f"on line {first} and on line {line}" if first != line else f"twice on line {line}"
            raise ConfigError(
                f"key {key!r} is given twice ({where}); YAML would silently keep only the last one: remove one"
            )
        seen[key] = line


def expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(values, depth) of the document with every alias expanded; memoized, so measuring costs O(graph)."""
    sizes: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()

    def visit(node: yaml.Node, level: int) -> tuple[int, int]:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise ConfigError(f"the YAML alias on line {node.start_mark.line + 1} contains itself (&a [*a])")
        if level > MAX_DEPTH:
            return 1, level
        open_nodes.add(id(node))
        total, depth = 1, 1
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        for child in children:
            size, child_depth = visit(child, level + 1)
            total = min(total + size, MAX_NODES + 1)
            depth = max(depth, child_depth + 1)
        open_nodes.discard(id(node))
        sizes[id(node)] = (total, depth)
        return total, depth

    return visit(root, 0)


AtlasLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
AtlasLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# YAML 1.1 needs a dot and a signed exponent (1.0e-4); users write 1e-4 and 5e3 and mean numbers.
_FLOAT_1_2 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
AtlasLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_1_2, list("-+0123456789."))


def load_yaml_text(text: str) -> Any:
    """One YAML document with the guards above (yaml.YAMLError for syntax, ConfigError for the guards)."""
    try:
        return yaml.load(text, Loader=AtlasLoader)  # noqa: S506 - AtlasLoader is a SafeLoader
    except RecursionError:
        raise ConfigError(f"the YAML is nested more deeply than Python can read (limit {MAX_DEPTH} levels)") from None
