"""save_pretrained → from_pretrained gives the same policy: same weights, same sampled actions."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.data.registry import build_data
from atlas.models.base import Policy
from atlas.models.config import ModelConfig
from atlas.models.registry import build_policy


def test_round_trip_identical_actions(tmp_path):
    cfg = ModelConfig(preset="atlas-tiny", head={"name": "diffusion", "num_inference_steps": 4})
    data = build_data(DataConfig(format="synthetic", image_size=32, num_episodes=4), DataLoadingConfig(), cfg.action_horizon, 0)
    torch.manual_seed(0)
    policy = build_policy(cfg, data.meta, data.normalizer)
    for p in policy.parameters():  # move off the initialization so a silent re-init would show
        p.data.add_(0.01 * torch.randn_like(p))
    policy.save_pretrained(tmp_path)
    loaded = Policy.from_pretrained(tmp_path)
    sample = data.train[0]
    obs = {"state": sample["state"][None], "images": sample["images"][None]}
    torch.manual_seed(123)
    a = policy.predict_action_chunk(obs, [sample["instruction"]])
    torch.manual_seed(123)
    b = loaded.predict_action_chunk(obs, [sample["instruction"]])
    assert a.shape == (1, cfg.action_horizon, data.meta.action_dim)
    assert torch.equal(a, b)
    saved = json.loads((tmp_path / "config.json").read_text())["model"]
    assert saved["head"]["name"] == "diffusion" and saved["fusion"]["width"] == 64  # resolved preset stored
    assert load_file(str(tmp_path / "model.safetensors")).keys() == policy.state_dict().keys()


def test_preset_defaults_and_explicit_overrides():
    cfg = ModelConfig(preset="atlas-small", fusion={"depth": 2}, head={"name": "diffusion"})
    assert cfg.fusion.depth == 2 and cfg.fusion.width == 128  # override kept, rest from the preset
    assert cfg.head.name == "diffusion" and cfg.vision.name == "resnet_small"
    assert ModelConfig(preset="rdt-1b").action_horizon == 64
    assert ModelConfig(preset="rdt-1b", action_horizon=32).action_horizon == 32
