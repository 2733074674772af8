"""Property-based tests over hostile inputs: every config is either valid or one ConfigError naming
the field; every HDF5 file is either read or one DataError/ConfigError, never another exception or a hang.

The example counts here are what docs/RELIABILITY.md reports as "fuzz cases run".
"""

from __future__ import annotations

import math
from pathlib import Path
from types import UnionType
from typing import Union, get_args, get_origin

import h5py
import numpy as np
import pytest
import yaml
from config_grammar import names_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from atlas.config import AtlasConfig, ConfigError, load_config
from atlas.config.loader import build_config
from atlas.data.errors import DataError

# random junk (the grammar-aware fuzz in test_config_grammar_fuzz.py / test_hdf5_grammar_fuzz.py goes deep);
# derandomized: the same cases on every CI run
CONFIG_CASES = 200
OVERRIDE_CASES = 150
HDF5_CASES = 100


def _leaves(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted field path of the schema (sections recursed, Optional sections included)."""
    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
        sections = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
        out += _leaves(sections[0], f"{prefix}{name}.") if sections else [f"{prefix}{name}"]
    return out


FIELDS = _leaves(AtlasConfig)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([0, 1, -1, 2, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -0.0, 1e-300, 1e300]),
    st.text(max_size=12), st.sampled_from(["", "auto", "yes", "1e-4", "none", "mlp", "cosine", "fp16", "[1, 2]"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=6)
KEYS = st.one_of(st.sampled_from(FIELDS), st.sampled_from(FIELDS).map(lambda k: k + "x"),
                 st.lists(st.text("abcdefghij_", min_size=1, max_size=8), min_size=1, max_size=3).map(".".join))


def _nest(pairs: list[tuple[str, object]]) -> dict:
    root: dict = {}
    for key, value in pairs:
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return root


def _names_a_field(message: str, keys: list[str]) -> bool:
    """The error names one of the keys that were set, or the section or unknown key above it that the
    check stopped at, as a whole dotted path (`training.lr` is not named by `training.min_lr`)."""
    prefixes = {".".join(key.split(".")[:n]) for key in keys for n in range(1, key.count(".") + 2)}
    return any(names_path(message, prefix) for prefix in prefixes if prefix)


@pytest.mark.timeout(300)
@settings(max_examples=CONFIG_CASES, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3))
def test_any_config_is_valid_or_one_config_error_naming_the_field(pairs):
    layers = _nest(pairs)
    try:
        cfg = build_config(layers, source="(fuzz)")
    except ConfigError as err:
        assert _names_a_field(str(err), [k for k, _ in pairs]), str(err)
        return
    assert isinstance(cfg, AtlasConfig)


OVERRIDE_TEXT = st.one_of(st.text(max_size=16), st.sampled_from(["[", "{a: 1", "]", "!!python/object:os.system", "*x",
                                                                    "&a [*a]", "'", "- - -", ": :", "1e9999", "0x1F"]))


@pytest.mark.timeout(300)
@settings(max_examples=OVERRIDE_CASES, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(FIELDS) | KEYS, OVERRIDE_TEXT), min_size=1, max_size=3))
def test_any_key_value_override_is_valid_or_one_config_error_naming_the_key(pairs):
    try:
        load_config(None, [f"{k}={v}" for k, v in pairs])
    except ConfigError as err:
        assert _names_a_field(str(err), [k.strip() for k, _ in pairs]), str(err)
    # anything else (TypeError, ValueError, ...) fails the test with its traceback


@pytest.mark.parametrize("value", [[], {}, ["mlp"]])
def test_a_non_string_preset_is_a_config_error(value):
    with pytest.raises(ConfigError, match="model.preset"):
        build_config({"model": {"preset": value}})


@pytest.mark.parametrize("text", ["[", "{a: 1", "]", "'", ": :", "*x", "!!python/object:os.system"])
def test_an_override_that_is_not_yaml_is_a_config_error(text):
    with pytest.raises(ConfigError, match="training.max_steps"):
        load_config(None, [f"training.max_steps={text}"])


@pytest.mark.timeout(300)
@settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(st.one_of(st.text(max_size=60), VALUES.map(lambda v: yaml.safe_dump(v))))
def test_any_yaml_file_is_valid_or_one_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("yaml") / "config.yaml"
    path.write_text(text)
    try:
        load_config(path)
    except ConfigError as err:
        assert str(path) in str(err) or "invalid config" in str(err)


# ----------------------------------------------------------------------------------------------------
# HDF5 files
# ----------------------------------------------------------------------------------------------------
DTYPES = st.sampled_from(["float32", "float64", "int8", "uint8", "int64", "bool", "S4", "complex64"])


@st.composite
def _array(draw, rows: int | None = None):
    shape = [draw(st.integers(0, 12)) if rows is None else rows] + draw(st.lists(st.integers(0, 5), max_size=3))
    dtype = draw(DTYPES)
    fill = draw(st.sampled_from([0.0, 1.0, math.nan, math.inf, -3.5]))
    if dtype.startswith("S"):
        return np.full(shape, b"ab", dtype=dtype)
    with np.errstate(invalid="ignore"):
        return np.full(shape, fill).astype(dtype)


@st.composite
def hdf5_case(draw):
    """A robomimic- or ALOHA-layout file with random shapes, dtypes, missing groups and truncation."""
    layout = draw(st.sampled_from(["robomimic", "aloha"]))
    rows = draw(st.integers(0, 12))
    same_rows = draw(st.booleans())
    datasets: dict[str, np.ndarray] = {}
    names = (["data/demo_0/actions", "data/demo_0/obs/state", "data/demo_0/obs/agentview_image"] if layout == "robomimic"
             else ["action", "observations/qpos", "observations/images/cam_high"])
    for name in names:
        if draw(st.integers(0, 5)) == 0:
            continue  # a missing dataset
        if name.endswith("image") or name.endswith("cam_high"):
            datasets[name] = draw(st.sampled_from([
                np.zeros((rows, 8, 8, 3), np.uint8), np.zeros((rows, 8, 8), np.uint8),
                np.array([b"\xff\xd8junk"] * rows, dtype="S6"), np.zeros((rows, 2), np.float32)]))
        else:
            datasets[name] = draw(_array(rows if same_rows else None))
    extra_group = draw(st.sampled_from(["", "data/demo_1", "data/demo_1/obs", "observations/images"]))
    truncate = draw(st.one_of(st.none(), st.floats(0.0, 0.99)))
    return layout, datasets, extra_group, truncate


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore:.*has std 0")  # constant columns: the statistics' own warning
@settings(max_examples=HDF5_CASES, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(hdf5_case())
def test_any_hdf5_file_is_read_or_one_clear_error(tmp_path_factory, case):
    from atlas.data.registry import build_data

    layout, datasets, extra_group, truncate = case
    path = tmp_path_factory.mktemp("h5") / "episode.hdf5"
    with h5py.File(path, "w") as f:
        for name, array in datasets.items():
            f.create_dataset(name, data=array)
        if extra_group and extra_group not in f:
            f.create_group(extra_group)
    if truncate is not None:
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: int(len(data) * truncate)])
    cfg = load_config(None, [f"data.format={layout}", f"data.path={path}", "data.val_ratio=0", "model.action_horizon=4",
                             f"data.stats_cache_dir={path.parent / 'stats'}"])
    try:
        bundle = build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, seed=0)
        for i in range(min(len(bundle.train), 3)):
            bundle.train[i]
    except (DataError, ConfigError) as err:
        assert str(path) in str(err) or "data." in str(err), str(err)
