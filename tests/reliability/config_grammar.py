"""The config schema as a grammar, for fuzzing: every field path, what the field accepts, and one-change
mutations of a valid config with the outcome each must have (the oracle).

Everything is read from the pydantic models (`AtlasConfig` and its sections), so a new field is fuzzed
as soon as it is declared. A mutation changes ONE thing in a valid config: a value (wrong type, out of
bounds, NaN/inf, a YAML 1.1 word boolean, a misspelt choice, empty, nested too deep), a key (misspelt by
one edit, placed in the wrong section), a section (replaced by a scalar or a list) or the text (a key
written twice). Its `Expect` says what a correct loader does with it: accept it and hold the value the
YAML means, or raise one ConfigError whose single problem line names exactly that field path and what
was expected. `judge` applies the oracle to what `load_config` did.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass, field
from types import UnionType
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from atlas.config import AtlasConfig, ConfigError
from atlas.config.base import MAX_INT
from atlas.config.loader import PROFILES
from atlas.config.schema import DUPLICATED_SETTINGS
from atlas.data.config import NORMALIZATION_MODES, MixtureEntry
from atlas.engine.schedules import SCHEDULES

# String fields whose words the schema itself checks (the others are registry keys, checked where the
# registry is used: `model.head.name: flw` loads and fails at build time).
CHECKED_WORDS = {"training.lr_scheduler": tuple(SCHEDULES), "data.normalization": NORMALIZATION_MODES,
                 "profile": (*PROFILES, "auto")}
EMPTY_IS_NONE = {"profile"}  # `profile: ''` is no profile
CANONICAL = {seed: canonical for seed, canonical in DUPLICATED_SETTINGS}  # where the seeds' second place lands
# Fields a cross-field rule may name beside the mutated one (the rule's message names both on purpose).
RELATED = {
    "training.max_steps": {"training.warmup_steps"},
    "training.warmup_steps": {"training.max_steps"},
    "model.fusion.width": {"model.fusion.num_heads"},
    "model.fusion.num_heads": {"model.fusion.width"},
    "model.fusion.alternate_cross_attention": {"model.fusion.cross_attention", "model.language", "model.vision"},
}
for _seed, _canonical in DUPLICATED_SETTINGS:  # the seeds' second place of a setting and its canonical place
    RELATED.setdefault(_seed, set()).add(_canonical)
    RELATED.setdefault(_canonical, set()).add(_seed)


# ----------------------------------------------------------------------------------------------------
# the schema
# ----------------------------------------------------------------------------------------------------
def _options(annotation: Any) -> tuple[list[Any], bool]:
    """(the non-None members of a union, whether None is allowed); a plain annotation is one member."""
    if typing.get_origin(annotation) in (typing.Union, UnionType):
        args = typing.get_args(annotation)
        return [a for a in args if a is not type(None)], type(None) in args
    return [annotation], annotation is type(None)


def _section_type(annotation: Any) -> type[BaseModel] | None:
    members, _ = _options(annotation)
    found = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    return found[0] if len(found) == 1 and len(members) == 1 else None


@dataclass(frozen=True)
class Leaf:
    """One settable field: its dotted path and its pydantic declaration."""

    path: str
    info: FieldInfo
    owner: type[BaseModel]

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def members(self) -> list[Any]:
        return _options(self.info.annotation)[0]

    @property
    def optional(self) -> bool:
        return _options(self.info.annotation)[1]

    def kinds(self) -> set[str]:
        """bool, int, float, str, literal, list, tuple, dict: what a value of this field may be."""
        out = set()
        for m in self.members:
            origin = typing.get_origin(m)
            if origin is Literal:
                out.add("literal")
            elif m in (bool, int, float, str):
                out.add(m.__name__)
            elif origin in (list, tuple, dict):
                out.add(origin.__name__)
        return out

    def choices(self) -> tuple:
        """The valid words of a Literal field, or of a string field the schema checks; () otherwise."""
        for m in self.members:
            if typing.get_origin(m) is Literal:
                return typing.get_args(m)
        return CHECKED_WORDS.get(self.path, ())

    def bounds(self) -> dict[str, float]:
        """{gt|ge|lt|le: bound} declared on the field."""
        out = {}
        for item in self.info.metadata:
            for kind in ("gt", "ge", "lt", "le"):
                value = getattr(item, kind, None)
                if value is not None and isinstance(item, (annotated_types.Interval, getattr(annotated_types, kind.capitalize()))):
                    out[kind] = value
        return out


def walk(model: type[BaseModel] = AtlasConfig, prefix: str = "") -> tuple[list[Leaf], list[Leaf]]:
    """(leaves, sections) of the schema; a section is a field whose value is itself a Section."""
    leaves, sections = [], []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        section = _section_type(info.annotation)
        if section is not None and section is not MixtureEntry:
            sections.append(Leaf(path, info, model))
            sub_leaves, sub_sections = walk(section, path + ".")
            leaves += sub_leaves
            sections += sub_sections
        else:
            leaves.append(Leaf(path, info, model))
    return leaves, sections


LEAVES, SECTIONS = walk()
BY_PATH = {leaf.path: leaf for leaf in LEAVES + SECTIONS}
ALL_PATHS = sorted(BY_PATH, key=len, reverse=True)


def section_of(path: str) -> type[BaseModel]:
    """The model class that declares the fields below `path` ("" is the whole config)."""
    model: type[BaseModel] = AtlasConfig
    for part in [p for p in path.split(".") if p]:
        model = _section_type(model.model_fields[part].annotation)
    return model


# ----------------------------------------------------------------------------------------------------
# mutations and what each must give
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    """`reject`: one ConfigError naming `path` and one of `words` (what was expected); `accept`: loads and
    the value at `path` is `value`; `either`: one or the other, judged the same way."""

    outcome: Literal["reject", "accept", "either"]
    path: str
    words: tuple[str, ...] = ()
    value: Any = None
    suggestion: str | None = None  # did-you-mean target a rejected key must name
    in_file: bool = False  # a text-level error: the message names the file (and `words`: lines, key)


@dataclass(frozen=True)
class Mutation:
    """One change to a valid config: set `path` (dotted; parents created) to the YAML text `raw`, or rename
    `path` to `rename_to`, or write the key at `path` twice (`duplicate`)."""

    kind: str
    path: str
    raw: str = ""
    expect: Expect = field(default_factory=lambda: Expect("either", ""))
    rename_to: str | None = None
    duplicate: bool = False


ANY = object()  # an accepted value not judged (the canonical place keeps whatever the base set)
TYPE_WORDS = {"bool": "boolean", "int": "integer", "float": "number", "str": "string", "list": "list",
              "tuple": "tuple", "dict": "dictionary"}
MEANT_TRUE, MEANT_FALSE = ("on", "YES"), ("off", "No")


def _expected_words(leaf: Leaf) -> tuple[str, ...]:
    """Words one of which a rejection must contain: the field's type or its choices."""
    words = [TYPE_WORDS[k] for k in leaf.kinds() if k in TYPE_WORDS]
    if leaf.kinds() & {"int", "float"}:
        words.append("finite")
    if leaf.choices():
        words.append("valid")  # `...; valid: cosine, linear` (the choices themselves are checked apart)
    return tuple(words) + ("must be",)  # a rule's own wording: `model.preset must be a preset name (one of ...)`


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _bound_mutations(leaf: Leaf) -> list[Mutation]:
    """One value just outside each declared bound (rejected, naming the bound) and the bound itself where
    it is allowed (accepted; only a cross-field rule may refuse it)."""
    out = []
    integer = "int" in leaf.kinds() and "float" not in leaf.kinds()
    step = 1 if integer else None
    for kind, bound in leaf.bounds().items():
        words = (_number_text(bound),)
        if kind in ("gt", "lt"):
            out.append(Mutation(f"bound.{kind}", leaf.path, _number_text(bound), Expect("reject", leaf.path, words)))
        if kind in ("ge", "le"):
            outside = bound - step if integer and kind == "ge" else bound + step if integer else (
                bound - max(abs(bound), 1.0) * 0.5 if kind == "ge" else bound + max(abs(bound), 1.0) * 0.5)
            out.append(Mutation(f"bound.{kind}", leaf.path, _number_text(outside), Expect("reject", leaf.path, words)))
            out.append(Mutation(f"bound.{kind}.edge", leaf.path, _number_text(bound),  # a cross-field rule may refuse it
                                Expect("either", leaf.path, value=int(bound) if integer else float(bound))))
    if integer and "le" not in leaf.bounds():
        out.append(Mutation("bound.huge_int", leaf.path, str(2**60), Expect("reject", leaf.path, (str(MAX_INT), "2**53", "less than"))))
    return out


def _one_edit(word: str, avoid: set[str]) -> list[str]:
    """A few spellings one edit away (drop, swap, double, replace a letter), none of them in `avoid`."""
    candidates = []
    if len(word) > 3:
        candidates.append(word[:2] + word[3:])  # a letter dropped
    if len(word) > 2:
        candidates.append(word[:1] + word[2] + word[1] + word[3:])  # two letters swapped
    candidates.append(word[:-1] + word[-1] * 2)  # the last letter doubled
    candidates.append(word[:-1] + ("x" if word[-1] != "x" else "z"))  # the last letter replaced
    return [c for c in dict.fromkeys(candidates) if c != word and c not in avoid]


def value_mutations(leaf: Leaf) -> list[Mutation]:
    """Every one-value change of a leaf along its type, with the outcome the schema's declaration implies."""
    kinds, choices = leaf.kinds(), leaf.choices()
    wrong = Expect("reject", leaf.path, _expected_words(leaf))
    out = []
    numeric = bool(kinds & {"int", "float"})
    if "dict" not in kinds:
        out.append(Mutation("type.mapping", leaf.path, "{x: 1}", wrong))
    if not kinds & {"list", "tuple", "dict"}:
        out.append(Mutation("type.list", leaf.path, "[1, 2]", wrong))
        out.append(Mutation("nesting.shallow", leaf.path, "[[[1]]]", wrong))
    if kinds & {"list", "tuple"} and not kinds & {"dict"}:
        out.append(Mutation("type.scalar_for_list", leaf.path, "7", wrong))
    if numeric or "bool" in kinds:
        out.append(Mutation("type.word", leaf.path, "abc", wrong))
    if "str" in kinds and not numeric:
        out.append(Mutation("type.number_for_string", leaf.path, "3", wrong))
    if numeric or kinds & {"bool", "str", "literal"}:
        for raw in (".nan", ".inf", "-.inf", "1e400"):
            out.append(Mutation("nonfinite", leaf.path, raw, Expect("reject", leaf.path, _expected_words(leaf))))
    out += _bound_mutations(leaf) if numeric else []
    for raw in MEANT_TRUE + MEANT_FALSE:
        meant = raw in MEANT_TRUE
        if "bool" in kinds:  # turning a switch on may need another one (a cross-field rule then names both)
            out.append(Mutation("yaml11_bool", leaf.path, raw, Expect("either" if meant else "accept", leaf.path, value=meant)))
        elif choices:
            word = _word_for(meant, choices)
            out.append(Mutation("yaml11_bool", leaf.path, raw, Expect("accept", leaf.path, value=word) if word
                                else Expect("reject", leaf.path, _expected_words(leaf))))
        elif "str" in kinds and not numeric:
            out.append(Mutation("yaml11_bool", leaf.path, raw, Expect("either", leaf.path, value=raw)))  # a word field
        elif not kinds & {"list", "dict", "tuple"}:
            out.append(Mutation("yaml11_bool", leaf.path, raw, wrong))
    for choice in [c for c in choices if isinstance(c, str)]:
        for typo in _one_edit(choice, {str(c) for c in choices} | {w for ws in _WORDS.values() for w in ws})[:2]:
            out.append(Mutation("enum.misspelt", leaf.path, typo, Expect("reject", leaf.path, _expected_words(leaf))))
    if "literal" in kinds and all(isinstance(c, int) for c in choices):
        out.append(Mutation("enum.outside", leaf.path, str(max(choices) + 1), wrong))
    null = Expect("accept", leaf.path, value=None) if leaf.optional else Expect("reject", leaf.path, _expected_words(leaf))
    if leaf.path in CANONICAL:  # the seeds' second place: null leaves the canonical place as it was
        null = Expect("accept", leaf.path, value=ANY)
    out.append(Mutation("empty.null", leaf.path, "null", null))
    if "str" in kinds:
        out.append(Mutation("empty.string", leaf.path, "''", Expect("either", leaf.path, value=None if leaf.path in EMPTY_IS_NONE else "")))
    if kinds & {"list"}:
        out.append(Mutation("empty.list", leaf.path, "[]", Expect("either", leaf.path, value=[])))
    out.append(Mutation("nesting.deep", leaf.path, "[" * 70 + "]" * 70, Expect("reject", "", ("nested",), in_file=True)))
    return out


_WORDS = {True: ("yes", "on", "true"), False: ("no", "off", "false", "none")}


def _word_for(meant: bool, choices: tuple) -> str | None:
    """The choice a YAML 1.1 boolean means for a word field (`off` -> "no" for mixed_precision), if any."""
    return next((w for w in _WORDS[meant] if w in choices), None)


SWITCH_SECTIONS = {"data.image_aug": "enabled", "model.lora": None}  # sections that a boolean turns on/off


def section_mutations(section: Leaf) -> list[Mutation]:
    """A section replaced by a scalar, a list, a word; the sections that are switches accept booleans."""
    expect = Expect("reject", section.path, ("dictionary", "mapping"))
    out = [Mutation("section.scalar", section.path, raw, expect) for raw in ("5", "abc", "[a, b]", "[]")]
    if section.path in SWITCH_SECTIONS:
        for raw in MEANT_TRUE + MEANT_FALSE + ("true", "false"):
            out.append(Mutation("section.switch", section.path, raw, Expect("accept", section.path, value=raw in MEANT_TRUE + ("true",))))
    return out


def key_mutations(leaf: Leaf) -> list[Mutation]:
    """The key misspelt by one edit (unknown key, did-you-mean the real one), and a leaf's name written at
    the top level (did-you-mean its section)."""
    parent = leaf.path.rsplit(".", 1)[0] if "." in leaf.path else ""
    siblings = set(section_of(parent).model_fields)
    out = []
    for typo in _one_edit(leaf.name, siblings)[:2]:
        wrong_path = f"{parent}.{typo}" if parent else typo
        out.append(Mutation("key.misspelt", leaf.path, rename_to=wrong_path,
                            expect=Expect("reject", wrong_path, ("unknown key",), suggestion=leaf.path)))
    if parent and "." not in parent and leaf.name not in AtlasConfig.model_fields:
        homes = [s for s in AtlasConfig.model_fields if leaf.name in getattr(section_of(s), "model_fields", {})]
        out.append(Mutation("key.wrong_section", leaf.path, rename_to=leaf.name,
                            expect=Expect("reject", leaf.name, ("unknown key",), suggestion=f"{homes[0]}.{leaf.name}")))
    return out


def all_mutations() -> list[Mutation]:
    """Every mutation of every field and section of the schema (for enumeration and for sampling)."""
    out = []
    for leaf in LEAVES:
        out += value_mutations(leaf) + key_mutations(leaf)
    for section in SECTIONS:
        out += section_mutations(section) + key_mutations(section)
    return out


# ----------------------------------------------------------------------------------------------------
# the oracle
# ----------------------------------------------------------------------------------------------------
def names_path(message: str, path: str) -> bool:
    """The message names `path` as a whole field path: not a longer path that contains it (`lr` is not
    `min_lr`, `training` is not `training.seed`), an element index after it allowed (`adam_betas.1`)."""
    return re.search(rf"(?<![\w.]){re.escape(path)}(?:\.\d+|\[\d+\])?(?!\.?\w)", message) is not None


def named_paths(message: str) -> set[str]:
    """Every schema path (field or section) the message names, by the same whole-path rule."""
    return {p for p in ALL_PATHS if names_path(message, p)}


def problem_lines(message: str) -> list[str]:
    """The problems of a ConfigError: the indented lines under `invalid config ...:`, else the message."""
    lines = message.splitlines()
    if lines and lines[0].startswith("invalid config") and lines[0].endswith(":"):
        return [line.strip() for line in lines[1:] if line.strip()]
    return [message]


def loaded_value(cfg: AtlasConfig, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = getattr(node, part)
    return node


def same_value(got: Any, meant: Any) -> bool:
    """Equal as the YAML meant it: tuples and lists alike, numbers by value, a section by its switch."""
    if meant is ANY:
        return True
    if isinstance(got, BaseModel) and isinstance(meant, bool):
        return getattr(got, "enabled", True) is meant
    if got is None and meant is False:
        return True  # model.lora: off
    if isinstance(got, (list, tuple)) and isinstance(meant, (list, tuple)):
        return len(got) == len(meant) and all(same_value(a, b) for a, b in zip(got, meant))
    if isinstance(got, bool) or isinstance(meant, bool):
        return got is meant
    if isinstance(got, (int, float)) and isinstance(meant, (int, float)):
        return got == meant or (math.isnan(got) and math.isnan(meant))
    return got == meant


def judge(mutation: Mutation, result: AtlasConfig | ConfigError, source: str = "") -> None:
    """Assert the oracle: the outcome the mutation must have, one problem naming exactly its field and
    what was expected, no other field named; accepted values as the YAML meant them."""
    expect = mutation.expect
    where = f"[{mutation.kind} {mutation.path} = {mutation.raw!r}{' -> ' + mutation.rename_to if mutation.rename_to else ''}]"
    if isinstance(result, ConfigError):
        message = str(result)
        assert expect.outcome in ("reject", "either"), f"{where} rejected, but it is valid:\n{message}"
        lines = problem_lines(message)
        assert len(lines) == 1, f"{where} one change, {len(lines)} problems reported:\n{message}"
        if expect.in_file:
            assert source and source in message, f"{where} the message does not name the file {source}:\n{message}"
        else:
            assert names_path(lines[0], expect.path), f"{where} the message does not name {expect.path}:\n{message}"
        allowed = {expect.path, expect.suggestion} | RELATED.get(expect.path, set())
        others = named_paths(lines[0]) - allowed
        assert not others, f"{where} the message names other fields {sorted(others)}:\n{message}"
        if "disagrees with" in message and RELATED.get(expect.path, set()) & named_paths(message):
            return  # the seeds' second place of a setting, given a value other than the canonical place's
        if expect.words:
            assert any(w.lower() in message.lower() for w in expect.words), f"{where} expected one of {expect.words}:\n{message}"
        leaf = BY_PATH.get(expect.path)
        if leaf is not None and (mutation.kind.startswith("enum.") or mutation.kind == "yaml11_bool") and leaf.choices():
            missing = [c for c in leaf.choices() if str(c) not in message]
            assert not missing, f"{where} the message does not list the valid choices {missing}:\n{message}"
        if expect.suggestion:
            assert f"did you mean {expect.suggestion}?" in message, f"{where} no 'did you mean {expect.suggestion}?':\n{message}"
        return
    assert expect.outcome in ("accept", "either"), f"{where} accepted, but it must be refused naming {expect.path}"
    got = loaded_value(result, CANONICAL.get(expect.path, expect.path))
    assert same_value(got, expect.value), f"{where} accepted as {got!r}; the YAML means {expect.value!r}"


# ----------------------------------------------------------------------------------------------------
# valid configs to start from, and a mutation applied to one as YAML text
# ----------------------------------------------------------------------------------------------------
SENTINEL = "__ATLAS_MUTATION__"


def _yaml():
    import yaml

    return yaml


def base_layers(repo) -> dict[str, dict]:
    """{name: the file's config layer} of every shipped config and recipe that trains, and every seed
    YAML that loads (some seeds are kept on purpose as invalid input); a shipped one that fails is an error."""
    from atlas.config.loader import config_layer, load_config, read_yaml

    out = {}
    shipped = sorted((repo / "atlas" / "configs").glob("*.yaml")) + sorted((repo / "atlas" / "configs" / "recipes").glob("*.yaml"))
    seeds = sorted((repo / "tests" / "fixtures" / "seed_yaml").glob("*.yaml"))
    for path in shipped + seeds:
        try:
            data = read_yaml(path)
            if "parameters" in data and "match" in data and "config" not in data:
                continue  # a recipe that only describes a setup for `atlas doctor`
            load_config(path)
        except ConfigError:
            if path in seeds:
                continue
            raise
        out[str(path.relative_to(repo))] = config_layer(data, path)
    return out


def _flow(value: Any) -> str:
    text = _yaml().safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text[:-4].strip() if text.endswith("\n...") else text


def _set(layer: dict, path: str, value: Any) -> bool:
    """Set a dotted path in a nested dict (creating sections); False where a parent is not a mapping."""
    node = layer
    for part in path.split(".")[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return False
    node[path.split(".")[-1]] = value
    return True


def _get(layer: dict, path: str) -> tuple[bool, Any]:
    node: Any = layer
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _pop(layer: dict, path: str) -> Any:
    node = layer
    for part in path.split(".")[:-1]:
        node = node[part]
    return node.pop(path.split(".")[-1])


def mutated_text(layer: dict, mutation: Mutation) -> tuple[str, Expect] | None:
    """The YAML text of `layer` with the mutation applied, and its expectation (line numbers filled in for a
    key written twice); None where the base cannot take it (a parent that is a plain value there)."""
    import copy

    layer = copy.deepcopy(layer)
    default = BY_PATH[mutation.path].info.get_default(call_default_factory=True)
    if mutation.rename_to is not None:
        present, value = _get(layer, mutation.path)
        if present:
            _pop(layer, mutation.path)
        value = value if present else default
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", exclude_defaults=True)
        if not _set(layer, mutation.rename_to, SENTINEL):
            return None
        text = _dump(layer).replace(SENTINEL, _flow(value) if value is not None else "null", 1)
        return text, mutation.expect
    if mutation.duplicate:
        present, value = _get(layer, mutation.path)
        if not present or isinstance(value, dict):
            return None
        _set(layer, mutation.path, SENTINEL)
        lines = _dump(layer).splitlines()
        at = next(i for i, line in enumerate(lines) if line.endswith(f"{mutation.path.rsplit('.', 1)[-1]}: {SENTINEL}"))
        written = lines[at].replace(SENTINEL, _flow(value))
        lines[at:at + 1] = [written, written]
        words = (f"'{mutation.path.rsplit('.', 1)[-1]}' is given twice (on line {at + 1} and on line {at + 2})",)
        return "\n".join(lines) + "\n", Expect("reject", mutation.path, words, in_file=True)
    if not _set(layer, mutation.path, SENTINEL):
        return None
    return _dump(layer).replace(SENTINEL, mutation.raw, 1), mutation.expect


def _dump(layer: dict) -> str:
    return _yaml().safe_dump(layer, sort_keys=False, default_flow_style=False, width=10_000)


def duplicate_mutations(layer: dict) -> list[Mutation]:
    """A key the base sets, written twice in its mapping (YAML keeps the last one silently)."""
    return [Mutation("key.duplicate", leaf.path, duplicate=True) for leaf in LEAVES if _get(layer, leaf.path)[0]
            and not isinstance(_get(layer, leaf.path)[1], dict)]


def override_of(mutation: Mutation, layer: dict) -> tuple[str, Expect] | None:
    """The mutation as one `KEY=VALUE` override (a renamed key keeps the base's value); None for the
    text-level ones. An override's errors name the key, never a file."""
    if mutation.duplicate:
        return None
    expect = mutation.expect
    if expect.in_file:
        expect = Expect("reject", mutation.path, expect.words)
    if mutation.rename_to is not None:
        present, value = _get(layer, mutation.path)
        value = value if present else BY_PATH[mutation.path].info.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", exclude_defaults=True)
        return f"{mutation.rename_to}={_flow(value) if value is not None else 'null'}", expect
    return f"{mutation.path}={mutation.raw}", expect


def mutated_layer(layer: dict, mutation: Mutation) -> dict | None:
    """The mutation applied to a parsed layer, its value read by the real YAML reader (no file): the fast
    path for enumerating every mutation; text-level ones (a key twice, deep nesting) need `mutated_text`."""
    import copy

    from atlas.config.yaml_loader import load_yaml_text

    layer = copy.deepcopy(layer)
    if mutation.rename_to is not None:
        present, value = _get(layer, mutation.path)
        if present:
            _pop(layer, mutation.path)
        value = value if present else BY_PATH[mutation.path].info.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", exclude_defaults=True)
        return layer if _set(layer, mutation.rename_to, value) else None
    return layer if _set(layer, mutation.path, load_yaml_text(mutation.raw)) else None


TEXT_LEVEL = ("nesting.deep", "key.duplicate")
