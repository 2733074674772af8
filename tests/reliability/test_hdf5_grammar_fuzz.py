"""Grammar-aware fuzz of HDF5 datasets: a valid robomimic file and a valid ALOHA folder, each changed in
ONE structural place (hdf5_grammar.py), read through the real `build_data`: refused with one DataError
naming the file, episode and key and what was expected, or read with every value equal to what the file
holds; never another exception, and the user's files never changed (hashes before and after)."""

from __future__ import annotations

import shutil
from pathlib import Path

import hdf5_grammar as H
import pytest

from atlas.config import ConfigError, load_config
from atlas.data.errors import DataError
from atlas.data.registry import build_data
from tests.data.data_h5files import write_aloha, write_robomimic

LAYOUTS = {
    "robomimic": (["data.format=robomimic", "data.obs_keys=[state]", "data.image_keys=[corner2_image]"], H.ROBOMIMIC_REQUIRED),
    "aloha": (["data.format=aloha", "data.image_keys=[cam_high,cam_left_wrist]"], H.ALOHA_REQUIRED),
}


def _pristine(root: Path, layout: str) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    if layout == "robomimic":
        return [write_robomimic(root / "reach.hdf5", lengths=(12, 9, 15), image_size=8)]
    write_aloha(root, episodes=2, lengths=(10, 7), encoded=False)
    return sorted(root.rglob("*.hdf5"))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """One valid dataset per layout, copied for each case."""
    out = {}
    for layout in LAYOUTS:
        root = tmp_path_factory.mktemp(f"pristine-{layout}")
        out[layout] = (root, _pristine(root, layout))
    return out


def _mutations() -> list[tuple[str, H.H5Mutation]]:
    import tempfile

    out = []
    with tempfile.TemporaryDirectory() as folder:
        for layout in LAYOUTS:
            root = Path(folder) / layout
            out += [(layout, m) for m in H.mutations(layout, _pristine(root, layout))]
    return out


MUTATIONS = _mutations()


def _run(pristine, tmp: Path, layout: str, mutation: H.H5Mutation) -> None:
    root, files = pristine[layout]
    copy = tmp / "dataset"
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copytree(root, copy)
    files = [copy / f.relative_to(root) for f in files]
    expect = H.apply(mutation, files, LAYOUTS[layout][1])
    before = H.sha256_tree(copy)
    path = copy if layout == "aloha" else files[0]
    cfg = load_config(None, [*LAYOUTS[layout][0], f"data.path={path}", "data.val_ratio=0", "model.action_horizon=4",
                             f"data.stats_cache_dir={tmp / 'stats'}"])
    try:
        bundle = build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, seed=0)
        H.judge_read_back(bundle.train.source, layout, files)
        bundle.train[len(bundle.train) - 1]  # one full sample through the transforms
    except (DataError, ConfigError) as err:
        assert expect.outcome == "reject", f"[{mutation}] refused, but it is readable: {err}"
        H.judge_error(str(err), mutation, expect, files)
    else:
        assert expect.outcome == "accept", f"[{mutation}] read, but it must be refused naming {expect.key or 'the file'}"
    after = H.sha256_tree(copy)
    assert all(after.get(name) == digest for name, digest in before.items()), f"[{mutation}] the dataset's files changed"


def test_the_mutations_cover_every_dataset_and_both_layouts():
    kinds = {(layout, m.kind) for layout, m in MUTATIONS}
    assert {(layout, kind) for layout in LAYOUTS for kind in ("drop", "dtype", "rows", "width", "nonfinite", "zero_length")} <= kinds
    assert sum(m.kind == "truncate" for _, m in MUTATIONS) / len(MUTATIONS) < 0.05  # a few unopenable files, not 40 %
    assert {m.key for layout, m in MUTATIONS if layout == "robomimic"} >= {*H.ROBOMIMIC_REQUIRED, "rewards", "dones"}


@pytest.mark.timeout(180)
@pytest.mark.filterwarnings("ignore:.*constant dimension")
def test_every_one_place_change_of_a_dataset_is_read_back_equal_or_one_error_naming_file_and_key(pristine, tmp_path):
    """All of them (~270, a few seconds): enumerated from the files, so nothing depends on a random draw."""
    failures = []
    for n, (layout, mutation) in enumerate(MUTATIONS):
        try:
            _run(pristine, tmp_path / f"case{n}", layout, mutation)
        except AssertionError as err:
            failures.append(str(err).splitlines()[0])
    assert not failures, f"{len(failures)} of {len(MUTATIONS)} judged wrong:\n" + "\n".join(failures[:15])


PINNED = [("robomimic", "nonfinite", "actions", "nan"), ("robomimic", "drop", "obs/corner2_image", ""),
          ("robomimic", "rows", "obs/state", "+1"), ("robomimic", "dtype", "obs/state", "S8"),
          ("robomimic", "width", "actions", ""), ("aloha", "width", "observations/qpos", ""),
          ("aloha", "zero_length", "", ""), ("aloha", "dtype", "observations/images/cam_high", "int16")]


@pytest.mark.parametrize("layout, kind, key, arg", PINNED)
def test_pinned_structural_mutations(pristine, tmp_path, layout, kind, key, arg):
    """A few mutations every run checks whatever hypothesis draws, in the second episode (not the one the
    widths are taken from)."""
    chosen = [m for lay, m in MUTATIONS if lay == layout and (m.kind, m.key, m.arg) == (kind, key, arg)]
    _run(pristine, tmp_path, layout, chosen[1])
