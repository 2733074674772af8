"""Order and loading: every step once per epoch over 2 ranks, resume mid-epoch, workers 0 vs 2 equal,
preloading equal to lazy reads, and the epoch figures in the log."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from data_h5files import write_aloha, write_robomimic
from torch.utils.data import DataLoader

from atlas.data.collate import collate_samples
from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.data.episodes import StepDataset
from atlas.data.registry import build_data
from atlas.data.sampler import EffectiveBatchSampler, SampleStream


def _bundle(tmp_path, **loading):
    path = write_robomimic(tmp_path / "mw.hdf5", tasks={"reach-v3": (0.0, 3), "push-v3": (2.0, 2)}, lengths=(11, 7, 9))
    cfg = DataConfig(format="robomimic", path=str(path), val_ratio=0.2)
    return build_data(cfg, DataLoadingConfig(**loading), 4, seed=3, effective_batch_size=8)


def _samplers(dataset: StepDataset, world: int, start: int = 0, steps: int | None = None):
    stream = SampleStream(len(dataset), seed=3, mode="all_steps", episode_ranges=dataset.episode_ranges)
    return [EffectiveBatchSampler(stream, 2, 2, world, rank, start, steps) for rank in range(world)]


def test_every_step_once_per_epoch_across_two_ranks(tmp_path):
    train = _bundle(tmp_path).train
    n = len(train)
    steps = -(-n // 8)  # enough effective batches (micro 2 x accumulation 2 x 2 ranks) to cover one epoch
    per_rank = [[i for batch in sampler for i in batch] for sampler in _samplers(train, world=2, steps=steps)]
    stream = []  # global stream order: each step is rank 0's 4 samples, then rank 1's
    for k in range(steps):
        stream += per_rank[0][4 * k : 4 * k + 4] + per_rank[1][4 * k : 4 * k + 4]
    epoch = stream[:n]
    assert sorted(epoch) == list(range(n))  # every sample exactly once in the first epoch
    assert sorted({train.locate(i) for i in epoch}) == sorted(
        (slot, t) for slot, length in enumerate(train.lengths) for t in range(length)
    )  # i.e. every (episode, t) of the training split


def test_resume_mid_epoch_continues_the_same_order(tmp_path):
    train = _bundle(tmp_path).train
    full = [[i for b in s for i in b] for s in _samplers(train, world=2, steps=6)]
    resumed = [[i for b in s for i in b] for s in _samplers(train, world=2, start=3 * 8, steps=3)]
    for rank in range(2):
        assert resumed[rank] == full[rank][3 * 4 :]


def _batches(dataset, workers: int, steps: int = 4) -> list[dict]:
    sampler = _samplers(dataset, world=1, steps=steps)[0]
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, **({"prefetch_factor": 2} if workers else {}))
    return list(loader)


def _assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if torch.is_tensor(x[key]):
                assert torch.equal(x[key], y[key]), key
            else:
                assert x[key] == y[key], key


@pytest.mark.timeout(60)
def test_workers_0_and_2_give_identical_batches(tmp_path):
    bundle = _bundle(tmp_path)
    _ = bundle.train[0]  # the main process holds an open handle before the fork: workers must reopen
    assert bundle.train.source._handles
    zero = _batches(bundle.train, 0)
    two = _batches(bundle.train, 2)
    _assert_same(zero, two)
    assert zero[0]["images"].shape == (2, 1, 1, 3, 16, 16)


@pytest.mark.timeout(60)
def test_aloha_jpeg_workers_and_preload_match_lazy(tmp_path):
    root = write_aloha(tmp_path / "rdt", episodes=3)
    cfg = DataConfig(format="aloha", path=str(root), val_ratio=0)
    lazy = build_data(cfg, DataLoadingConfig(), 4, 0).train
    preloaded = build_data(cfg, DataLoadingConfig(preload_data=True), 4, 0).train
    jpeg = build_data(cfg, DataLoadingConfig(preload_data=True, use_compression=True), 4, 0).train
    reference = _batches(lazy, 0, steps=3)
    _assert_same(reference, _batches(lazy, 2, steps=3))
    _assert_same(reference, _batches(preloaded, 0, steps=3))
    _assert_same(reference, _batches(jpeg, 0, steps=3))  # stored JPEG bytes are kept as they are


@pytest.mark.parametrize("loading", [{}, {"preload_data": True}, {"preload_data": True, "use_compression": True}])
def test_a_batch_read_at_once_holds_each_samples_own_window(tmp_path, loading):
    """`__getitems__` (what the DataLoader calls with a micro-batch) gathers the batch in one go; every sample
    must still be its own window, checked against the file read with h5py: history clipped at the episode
    start, actions past the end repeat the last one and are masked, duplicates and episode edges included."""
    path = write_robomimic(tmp_path / "mw.hdf5", tasks={"reach-v3": (0.0, 2), "push-v3": (2.0, 2)}, lengths=(6, 3, 9))
    cfg = DataConfig(format="robomimic", path=str(path), val_ratio=0, obs_horizon=2)
    train = build_data(cfg, DataLoadingConfig(**loading), 5, seed=0).train
    edges = [int(s) for s, n in train.episode_ranges for s in (s, s + n - 1)]
    indices = edges + [3, 3, 0] + list(np.random.default_rng(0).permutation(len(train))[:7])
    batch = train.__getitems__(indices)
    with h5py.File(path, "r") as f:
        for index, sample in zip(indices, batch):
            slot, t = train.locate(index)
            demo = f["data"][train.source.episode_name(train.episode_ids[slot]).split("/")[-1]]
            n = len(demo["actions"])
            history = [max(t - 1, 0), t]
            future = [min(t + k, n - 1) for k in range(5)]
            np.testing.assert_array_equal(sample["state"], demo["obs/state"][()][history])
            np.testing.assert_array_equal(sample["action"], demo["actions"][()][future])
            assert sample["action_mask"].tolist() == [t + k < n for k in range(5)]
            frames = demo["obs/corner2_image"][()][history].transpose(0, 3, 1, 2)[:, None]
            if loading.get("use_compression"):  # JPEG in memory: lossy, close to the stored frames
                assert np.abs(sample["images"].astype(int) - frames).mean() < 8
            else:
                np.testing.assert_array_equal(sample["images"], frames)
            assert sample["instruction"] == demo.attrs["language_instruction"]
            assert train.task_names[sample["task_index"]] == demo.attrs["task"]
            assert (sample["episode_index"], sample["frame_index"]) == (train.episode_ids[slot], t)
    single = [train[i] for i in indices]  # one at a time: the same values
    _assert_same([collate_samples(batch)], [collate_samples(single)])
    with pytest.raises(IndexError, match=f"sample {len(train)} out of range"):
        train.__getitems__([0, len(train)])


def test_log_lines_give_samples_and_steps_per_epoch(tmp_path):
    bundle = _bundle(tmp_path)
    text = "\n".join(bundle.log_lines)
    assert f"samples/epoch={len(bundle.train)} " in text
    assert f"steps/epoch={-(-len(bundle.train) // 8)} " in text


def test_validation_split_is_by_episode_and_stable(tmp_path):
    a = _bundle(tmp_path)
    path = tmp_path / "mw.hdf5"
    b = build_data(DataConfig(format="robomimic", path=str(path), val_ratio=0.2), DataLoadingConfig(), 4, seed=99)
    assert a.val.episode_ids == b.val.episode_ids  # the seed does not move the split
    assert not set(a.val.episode_ids) & set(a.train.episode_ids)
    tasks = {a.train.source.info(e).task for e in a.val.episode_ids}
    assert tasks == {"reach-v3", "push-v3"}  # every task with 2+ episodes is validated
    explicit = build_data(
        DataConfig(format="robomimic", path=str(path), val_episodes=["demo_0", 4]), DataLoadingConfig(), 4, 0
    )
    assert explicit.val.episode_ids == [0, 4] and 0 not in explicit.train.episode_ids
    assert np.isin(explicit.train.episode_ids, [1, 2, 3]).all()


def test_numpy_collate_equals_default_collate(tmp_path):
    from torch.utils.data import default_collate

    train = _bundle(tmp_path).train
    samples = [train[i] for i in (0, 5, 17)]
    _assert_same([collate_samples(samples)], [default_collate(samples)])
    assert collate_samples(samples)["action_mask"].dtype == torch.bool


def test_the_planner_reads_shapes_from_the_file_and_warns_when_it_cannot(tmp_path):
    """`atlas plan` sizes the model from the data's own header (state, action, cameras, image size), not
    the config's defaults; an unreadable path falls back to the config with a warning naming it."""
    from atlas.config import load_config
    from atlas.planning.probe import dataset_meta

    path = write_robomimic(tmp_path / "mw.hdf5", image_size=24)
    with h5py.File(path) as f:
        demo = f["data"][sorted(f["data"])[0]]
        state_dim = sum(demo["obs"][k].shape[-1] for k in demo["obs"] if not k.endswith("_image"))
        action_dim = demo["actions"].shape[-1]
    cfg = load_config(None, ["data.format=robomimic", f"data.path={path}"])
    meta = dataset_meta(cfg)
    assert (meta.state_dim, meta.action_dim, meta.image_size) == (state_dim, action_dim, (24, 24))
    assert meta.cameras and meta.state_dim != cfg.data.state_dim

    missing = load_config(None, ["data.format=robomimic", f"data.path={tmp_path / 'absent.hdf5'}"])
    with pytest.warns(UserWarning, match="absent.hdf5"):
        fallback = dataset_meta(missing)
    assert fallback.state_dim == missing.data.state_dim
