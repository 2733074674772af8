"""Per-module LR multipliers, freezing (bitwise unchanged), weight-decay exclusions, groups in the log."""

from __future__ import annotations

import pytest
import torch
from train_helpers import TINY, final_weights, train_run

from atlas.config import ConfigError, load_config
from atlas.data.registry import build_data
from atlas.engine.optim import build_param_groups
from atlas.models.registry import build_policy


def _fresh_policy(overrides):
    cfg = load_config(None, TINY + overrides)
    torch.manual_seed(cfg.training.seed)
    import random

    import numpy as np

    random.seed(cfg.training.seed)
    np.random.seed(cfg.training.seed)
    data = build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, cfg.training.seed)
    return build_policy(cfg.model, data.meta, data.normalizer)


@pytest.mark.timeout(120)
def test_frozen_module_is_bitwise_unchanged_and_groups_are_logged(tmp_path):
    overrides = ["training.lr_multipliers={fusion: 0.0, action_head: 0.5}", "training.max_steps=15",
                 "training.val_interval=0", "training.learning_rate=1e-2"]
    train_run(tmp_path, overrides)
    before = _fresh_policy(overrides).state_dict()
    after = final_weights(tmp_path)
    fusion = [k for k in before if k.startswith("fusion.")]
    assert fusion and all(torch.equal(before[k], after[k]) for k in fusion)
    assert not torch.equal(before["action_head.weight"], after["action_head.weight"])
    log = (tmp_path / "train.log").read_text()
    assert "param group action_head: " in log and "lr x0.5" in log
    assert "param group action_head.no_decay" in log and "weight_decay 0.0" in log
    assert "frozen: " in log and "frozen: 0 params" not in log


def test_weight_decay_excludes_biases_and_norm_weights():
    policy = _fresh_policy([])
    groups, _ = build_param_groups(policy, {}, weight_decay=0.05)
    names = {id(p): n for n, p in policy.named_parameters()}
    for group in groups:
        for p in group["params"]:
            name = names[id(p)]
            is_excluded = p.ndim <= 1
            assert group["weight_decay"] == (0.0 if is_excluded else 0.05), name
    decayed = [names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    assert decayed and all(n.endswith(".weight") for n in decayed)


def test_seed_alias_and_unknown_module_errors():
    policy = _fresh_policy([])
    with pytest.raises(ConfigError, match="training.lr_multipliers.vision_tower: no parameter name starts with"):
        build_param_groups(policy, {"vision_tower": 0.1}, 0.0)
    with pytest.raises(ConfigError, match="must be >= 0"):
        build_param_groups(policy, {"fusion": -1.0}, 0.0)


def test_lang_encoder_alias_maps_to_language():
    from torch import nn

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.language = nn.Linear(2, 2)
            self.fusion = nn.Linear(2, 2)

    groups, lines = build_param_groups(Toy(), {"lang_encoder": 0.1}, 0.0)
    assert any("'lang_encoder' is read as 'language'" in line for line in lines)
    assert {g["name"]: g["lr_multiplier"] for g in groups}["language"] == 0.1


def test_optimizer_is_fused_on_cpu_and_steps_like_the_per_tensor_loop():
    """The loop's AdamW is fused (foreach for sharded strategies) and takes the same steps as torch's
    per-tensor default given the same groups: multipliers and decoupled weight decay, to float rounding."""
    from atlas.engine.optim import build_optimizer

    policy, twin = _fresh_policy([]), _fresh_policy([])
    assert all(torch.equal(a, b) for a, b in zip(policy.parameters(), twin.parameters()))
    groups, _ = build_param_groups(policy, {"action_head": 0.5}, 0.1)
    fused = build_optimizer(groups, 1e-2, (0.9, 0.999), 1e-8)
    assert fused.defaults["fused"] is True
    reference_groups = []
    for group in build_param_groups(twin, {"action_head": 0.5}, 0.1)[0]:
        reference_groups.append({"params": group["params"], "lr": 1e-2 * group["lr_multiplier"],
                                 "weight_decay": group["weight_decay"]})
    reference = torch.optim.AdamW(reference_groups, lr=1e-2, foreach=False)  # torch's per-tensor loop
    assert {g["lr"] for g in fused.param_groups} == {1e-2, 5e-3}
    foreach = build_optimizer(build_param_groups(twin, {}, 0.1)[0], 1e-2, (0.9, 0.999), 1e-8, fused=False)
    assert foreach.defaults["foreach"] is True and not foreach.defaults["fused"]

    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=generator) for p in policy.parameters()]
        for model in (policy, twin):
            for p, g in zip(model.parameters(), grads):
                p.grad = g.clone() if p.requires_grad else None
        fused.step()
        reference.step()
    assert max((a - b).abs().max().item() for a, b in zip(policy.parameters(), twin.parameters())) < 1e-6
    start = _fresh_policy([])
    assert any(not torch.equal(a, b) for a, b in zip(start.parameters(), policy.parameters()))  # it did step
