"""`data.mixture`: a LeRobot dataset (state 8, action 7) and a robomimic file (state 39, action 4), by weight."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from data_h5files import write_robomimic
from lerobot_helpers import fixture_copy
from train_helpers import final_weights, read_metrics

from atlas.config import ConfigError, load_config
from atlas.data.collate import collate_samples
from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.data.inspect import inspect_samples
from atlas.data.loader import valid_elements
from atlas.data.mixture_normalizer import MixtureNormalizer, select_dataset
from atlas.data.normalize import Normalizer
from atlas.data.registry import build_data, open_source
from atlas.data.sampler import SampleStream
from atlas.models.config import ModelConfig
from atlas.models.registry import build_policy

WEIGHTS = {"lr": 0.7, "mw": 0.3}


@pytest.fixture
def two_datasets(tmp_path):
    lerobot = fixture_copy(tmp_path)
    h5 = write_robomimic(tmp_path / "mw.hdf5", tasks={"reach-v3": (0.0, 4), "push-v3": (1.0, 4)})
    return lerobot, h5


def mixture(lerobot, h5, weights=WEIGHTS) -> list[dict]:
    return [{"path": str(lerobot), "weight": weights["lr"], "name": "lr", "image_keys": [], "normalization": "min_max"},
            {"path": str(h5), "format": "robomimic", "weight": weights["mw"], "name": "mw", "image_keys": []}]


def bundle(lerobot, h5, weights=WEIGHTS, horizon=4):
    cfg = DataConfig(mixture=mixture(lerobot, h5, weights), obs_horizon=2, stats_cache_dir=None)
    return build_data(cfg, DataLoadingConfig(), horizon, seed=3)


@pytest.mark.parametrize("weights", [WEIGHTS, {"lr": 0.25, "mw": 0.75}])
def test_fractions_follow_the_weights_within_two_points_after_2000_samples(two_datasets, weights):
    data = bundle(*two_datasets, weights)
    stream = SampleStream(len(data.train), 3, "all_steps", data.train.episode_ranges)
    owners = np.searchsorted(data.train.starts, stream.take(0, 2000), side="right") - 1
    drawn = np.bincount(owners, minlength=2) / 2000
    assert abs(drawn[0] - weights["lr"]) <= 0.02 and abs(drawn[1] - weights["mw"]) <= 0.02, drawn
    assert stream.mixture_fractions(2000) == pytest.approx({"mixture/lr": drawn[0], "mixture/mw": drawn[1]}, abs=1e-12)
    assert SampleStream(100, 3).mixture_fractions(50) == {}  # one dataset: no mixture metrics


def test_samples_are_normalized_per_dataset_and_padded_with_masks(two_datasets):
    lerobot, h5 = two_datasets
    data = bundle(lerobot, h5)
    assert (data.meta.state_dim, data.meta.action_dim) == (39, 7)
    first_mw = int(data.train.starts[1])
    for slot, name, fmt, path, (state_dim, action_dim) in [(0, "lr", "lerobot", lerobot, (8, 7)),
                                                           (first_mw, "mw", "robomimic", h5, (39, 4))]:
        k, local = data.train.locate(slot)
        member = data.train.members[k]
        sample = data.train[slot]
        assert member.name == name and sample["dataset_index"] == k
        assert sample["state"].shape == (2, 39) and sample["action"].shape == (4, 7)
        assert sample["state_dim_mask"].sum() == state_dim and sample["action_dim_mask"].sum() == action_dim
        assert not sample["state"][:, state_dim:].any() and not sample["action"][:, action_dim:].any()
        # the dataset's own raw sample, normalized with its own statistics and modes
        source = open_source(DataConfig(format=fmt, path=str(path), image_keys=[]))
        episode = member.dataset.episode_ids[member.dataset.locate(local)[0]]
        global_index = sum(source.length(e) for e in range(episode)) + member.dataset.locate(local)[1]
        [(_, raw, _)], _ = inspect_samples(source, [global_index], 2, 4)
        expected = member.normalizer.normalize("state", torch.from_numpy(raw["state"])).numpy()
        np.testing.assert_array_equal(sample["state"][:, :state_dim], expected)
        assert member.normalizer.mode("action") == ("min_max" if name == "lr" else "mean_std")
    assert isinstance(data.normalizer, MixtureNormalizer) and [d["name"] for d in data.normalizer.datasets] == ["lr", "mw"]


def test_padded_action_entries_carry_no_loss(two_datasets):
    data = bundle(*two_datasets)
    batch = collate_samples(data.train.__getitems__(list(range(int(data.train.starts[1]) - 3, int(data.train.starts[1]) + 5))))
    real = batch["action_mask"].unsqueeze(-1) & batch["action_dim_mask"].unsqueeze(1)
    assert valid_elements(batch) == int(real.sum()) < batch["action_mask"].sum() * 7
    torch.manual_seed(0)
    for preset in ("mlp", "atlas-tiny"):
        cfg = ModelConfig(preset=preset, action_horizon=4, unified_dim=48 if preset != "mlp" else None,
                          **({} if preset == "mlp" else {"vision": {"name": "none"}, "language": {"name": "none"}}))
        policy = build_policy(cfg, data.meta, data.normalizer)
        batch_in = data.transform(batch, torch.device("cpu"), train=False)
        out = policy(batch_in)
        assert int(out["num_valid"]) == int(real.sum()), preset  # padded rows and entries are not counted
        if preset == "mlp":  # a deterministic head: the padded targets do not change the loss at all
            changed = dict(batch_in, action=torch.where(real, batch_in["action"], torch.randn_like(batch_in["action"]) * 100))
            assert torch.equal(policy(changed)["loss_sum"], out["loss_sum"])


def test_mixture_config_errors_name_the_entry(two_datasets):
    lerobot, h5 = two_datasets
    entries = mixture(lerobot, h5)
    with pytest.raises(ConfigError, match=r"data.mixture\[1\]: unknown key"):
        load_config(None, ["data.mixture=" + json.dumps([entries[0], {**entries[1], "obs_keyz": ["state"]}])])
    with pytest.raises(ConfigError, match=r"data.mixture\[0\]: \['obs_horizon'\] apply to the whole mixture"):
        load_config(None, ["data.mixture=" + json.dumps([{**entries[0], "obs_horizon": 3}, entries[1]])])
    with pytest.raises(ConfigError, match="used twice"):
        load_config(None, ["data.mixture=" + json.dumps([entries[0], {**entries[1], "name": "lr"}])])
    with pytest.raises(ConfigError, match="random_episode is not supported"):
        build_data(DataConfig(mixture=entries, sampling="random_episode"), DataLoadingConfig(), 4, 0)
    with pytest.raises(ConfigError, match="same number of cameras"):
        build_data(DataConfig(mixture=[{**e, "image_keys": None} for e in entries]), DataLoadingConfig(), 4, 0)


RUN = ["model.preset=mlp", "model.hidden_dim=32", "model.num_layers=2", "model.action_horizon=4",
       "data.batch_size=8", "data.obs_horizon=2", "training.max_steps=250", "training.warmup_steps=0",
       "training.log_interval=25", "training.val_interval=125", "training.checkpoint_interval=125",
       "training.ema.enabled=false", "model.dropout=0.1", "data.state_noise_snr=30",
       "logging.progress_bar=false", "logging.tensorboard=false"]


def _train(run_dir, entries, resume=None, workers=0):
    from atlas.train import train

    overrides = RUN + ["data.mixture=" + json.dumps(entries), f"data_loading.num_workers={workers}"]
    return train(load_config(None, overrides), run_dir, resume=resume)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_mixture_trains_logs_fractions_resumes_bitwise_and_eval_picks_a_dataset(two_datasets, tmp_path, monkeypatch):
    entries = mixture(*two_datasets)
    _train(tmp_path / "full", entries)
    monkeypatch.setenv("ATLAS_STOP_AT_STEP", "90")
    assert _train(tmp_path / "cut", entries, workers=2)["final_step"] == 90  # and decoded in worker processes
    monkeypatch.delenv("ATLAS_STOP_AT_STEP")
    _train(tmp_path / "cut", entries, resume="auto", workers=2)
    full, cut = final_weights(tmp_path / "full"), final_weights(tmp_path / "cut")
    assert all(torch.equal(full[k], cut[k]) for k in full)

    lines = [m for m in read_metrics(tmp_path / "full") if "loss" in m]
    last = lines[-1]
    assert last["step"] == 250  # 2,000 samples drawn
    assert abs(last["mixture/lr"] - 0.7) <= 0.02 and abs(last["mixture/mw"] - 0.3) <= 0.02, last
    assert all(abs(m["mixture/lr"] + m["mixture/mw"] - 1) < 1e-9 for m in lines)

    from atlas.sim.checkpoint import load_checkpoint

    policy = load_checkpoint(tmp_path / "full", "raw").policy
    assert isinstance(policy.normalizer, MixtureNormalizer)
    assert select_dataset(policy, None) == "lr"  # default: the first
    lr_stats = json.loads((tmp_path / "full/checkpoints/latest/normalization.json").read_text())["mixture"]["datasets"]
    assert [d["name"] for d in lr_stats] == ["lr", "mw"] and lr_stats[1]["state_dim"] == 39
    assert policy.predict_action_chunk({"state": np.zeros((1, 2, 8), np.float32)}, ["x"]).shape == (1, 4, 7)
    assert select_dataset(policy, "mw") == "mw"
    assert policy.normalizer.stats["state"]["mean"] == lr_stats[1]["stats"]["state"]["mean"]
    assert policy.predict_action_chunk({"state": np.zeros((1, 2, 39), np.float32)}, ["x"]).shape == (1, 4, 4)
    with pytest.raises(ConfigError, match="trained on lr, mw"):
        select_dataset(policy, "nope")
    assert isinstance(Normalizer.from_dict(policy.normalizer.to_dict()), MixtureNormalizer)
