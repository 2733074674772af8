"""Grammar-aware fuzz of configs and KEY=VALUE overrides: valid configs (every shipped config and recipe,
the seeds' YAML) changed in ONE place along the schema, each judged by the oracle in config_grammar.py:
loaded as the YAML meant it, or one ConfigError naming exactly that field path and what was expected.

Every field and section of the schema is mutated in every applicable way in-process (fast, no files);
hypothesis then samples (base config, mutation) pairs through real files and real overrides, derandomized
so CI sees the same cases every run; a few go through the real `atlas train`.
"""

from __future__ import annotations

import collections
from pathlib import Path

import config_grammar as G
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlas.config import ConfigError, load_config
from atlas.config.loader import build_config, canonicalize

REPO = Path(__file__).resolve().parents[2]
BASES = G.base_layers(REPO)
FAST_BASE = "atlas/configs/smoke.yaml"
MUTATIONS = G.all_mutations()
FILE_CASES = 150
OVERRIDE_CASES = 150
def fuzz(examples: int) -> settings:
    """Bounded and reproducible: the same cases on every CI run (derandomize), no example database."""
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _load_layer(layer: dict):
    """What load_config does with one file layer: the seeds' second places moved, then validated."""
    moved: dict[str, str] = {}
    try:
        return build_config(canonicalize(layer, moved), source="(fuzz)", written_as=moved)
    except ConfigError as err:
        return err


def test_the_bases_cover_the_shipped_configs_and_the_seeds():
    assert {"atlas/configs/smoke.yaml", "atlas/configs/train_config.yaml", "atlas/configs/mt10_gpu.yaml"} <= set(BASES)
    assert any(name.startswith("atlas/configs/recipes/") for name in BASES)
    assert sum(name.startswith("tests/fixtures/seed_yaml/") for name in BASES) >= 10


@pytest.mark.timeout(120)
def test_every_mutation_of_every_schema_field_is_loaded_as_meant_or_names_the_field():
    """All mutations of all 155+ fields and 15 sections on one base, in-process; the tally of where each
    case stopped is the fuzz's depth (most must reach the field's own check, not the unknown-key one)."""
    failures, stops = [], collections.Counter()
    for mutation in MUTATIONS:
        if mutation.kind in G.TEXT_LEVEL:
            continue
        layer = G.mutated_layer(BASES[FAST_BASE], mutation)
        if layer is None:
            continue
        result = _load_layer(layer)
        stops["accepted" if not isinstance(result, ConfigError) else
              "unknown key" if "unknown key" in str(result) else "field check"] += 1
        try:
            G.judge(mutation, result)
        except AssertionError as err:
            failures.append(str(err))
    assert not failures, f"{len(failures)} of {sum(stops.values())} mutations judged wrong:\n" + "\n".join(failures[:15])
    total = sum(stops.values())
    assert total > 2500 and stops["unknown key"] / total < 0.2 and stops["accepted"] / total > 0.1, stops


@st.composite
def file_mutation(draw):
    base = draw(st.sampled_from(sorted(BASES)))
    pool = MUTATIONS + G.duplicate_mutations(BASES[base])
    return base, draw(st.sampled_from(pool))


@pytest.mark.timeout(120)
@fuzz(FILE_CASES)
@given(file_mutation())
def test_a_config_file_changed_in_one_place_is_loaded_as_meant_or_names_the_field(tmp_path_factory, case):
    base, mutation = case
    built = G.mutated_text(BASES[base], mutation)
    if built is None:
        return
    text, expect = built
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(text)
    try:
        result = load_config(path)
    except ConfigError as err:
        result = err
    G.judge(G.Mutation(mutation.kind, mutation.path, mutation.raw, expect, mutation.rename_to, mutation.duplicate),
            result, str(path))


@pytest.mark.timeout(120)
@fuzz(OVERRIDE_CASES)
@given(st.sampled_from(sorted(BASES)), st.sampled_from([m for m in MUTATIONS if not m.duplicate]))
def test_an_override_changed_in_one_place_is_loaded_as_meant_or_names_the_key(tmp_path_factory, base, mutation):
    override, expect = G.override_of(mutation, BASES[base])
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(yaml.safe_dump(BASES[base]))
    try:
        result = load_config(path, [override])
    except ConfigError as err:
        result = err
    G.judge(G.Mutation(mutation.kind, mutation.path, mutation.raw, expect, mutation.rename_to), result)


@pytest.mark.timeout(120)
def test_every_field_set_by_an_override_to_a_valid_value_lands_in_the_config():
    """The field's default, and each bound it may reach, written as KEY=VALUE: the loaded value is that."""
    wrong = []
    for leaf in G.LEAVES:
        default = leaf.info.get_default(call_default_factory=True)
        values = [G._flow(default) if default is not None else "null"]
        values += [m.raw for m in G._bound_mutations(leaf) if m.kind.endswith(".edge")] if leaf.kinds() & {"int", "float"} else []
        for raw in values:
            meant = yaml.safe_load(raw)
            try:
                cfg = load_config(None, [f"{leaf.path}={raw}"])
            except ConfigError as err:
                if set(G.RELATED.get(leaf.path, ())) & G.named_paths(str(err)):
                    continue  # the edge value breaks a cross-field rule, which names both
                wrong.append(f"{leaf.path}={raw}: {err}")
                continue
            got = G.loaded_value(cfg, G.CANONICAL.get(leaf.path, leaf.path))
            if meant is not None or leaf.path not in G.CANONICAL:
                if not G.same_value(got, meant):
                    wrong.append(f"{leaf.path}={raw}: loaded as {got!r}")
    assert not wrong, "\n".join(wrong[:20])


@pytest.mark.parametrize("path, wrong, did_you_mean", [
    ("training.learning_rate", "training.learnig_rate", "training.learning_rate"),
    ("model.lora.rank", "model.lora.rnak", "model.lora.rank"),
    ("data.normalization", "normalization", "data.normalization"),
    ("training.min_lr", "training.min_lrr", "training.min_lr"),
])
def test_did_you_mean_names_the_real_field(path, wrong, did_you_mean):
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"{wrong}=1"])
    assert f"unknown key {wrong}; did you mean {did_you_mean}?" in str(err.value)


def test_the_field_path_oracle_is_a_whole_path_match():
    assert G.names_path("training.min_lr: Input should be ...", "training.min_lr")
    assert not G.names_path("training.min_lr: Input should be ...", "training.lr")
    assert not G.names_path("training.learning_rate: bad", "training")
    assert G.names_path("training.adam_betas.1: Field required", "training.adam_betas")
    assert G.names_path("unknown key model.lora.rnak; did you mean model.lora.rank?", "model.lora.rank")
    assert not G.names_path("data.image_aug.enabled: bad", "data.image_aug")
