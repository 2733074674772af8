"""The name-keyed optimizer state Atlas writes for whole tensors is the dict torch's own
`get_optimizer_state_dict(full_state_dict=True)` builds, and loads back through torch's setter."""

from __future__ import annotations

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict, set_optimizer_state_dict

from atlas.config import load_config
from atlas.data.collate import collate_samples
from atlas.data.registry import build_data
from atlas.engine.optim import build_optimizer, build_param_groups, named_optimizer_state
from atlas.models.registry import build_policy


def _trained_policy_and_optimizer():
    cfg = load_config(None, ["data.format=synthetic", "data.num_episodes=4", "data.episode_length=10",
                             "model.preset=mlp", "model.hidden_dim=16", "model.num_layers=2"])
    data = build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, 0)
    torch.manual_seed(0)
    policy = build_policy(cfg.model, data.meta, data.normalizer)
    # three groups: a 0.1x module, a frozen one (absent from the optimizer), the rest with and without decay
    groups, _ = build_param_groups(policy, {"fusion.0": 0.1, "task_embedding": 0.0}, 0.01)
    optimizer = build_optimizer(groups, 1e-3, (0.9, 0.999), 1e-8)
    batch = collate_samples([data.train[i] for i in range(4)])
    for _ in range(2):
        policy(data.transform(batch, torch.device("cpu"), train=True))["loss_sum"].backward()
        optimizer.step()
        optimizer.zero_grad()
    return policy, optimizer


def test_named_state_equals_torchs_full_state_dict_and_loads_back():
    policy, optimizer = _trained_policy_and_optimizer()
    ours = named_optimizer_state(policy, optimizer)
    torchs = get_optimizer_state_dict(policy, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    assert len(ours["param_groups"]) >= 3
    assert ours["param_groups"] == torchs["param_groups"]
    assert ours["state"].keys() == torchs["state"].keys() and not any(k.startswith("task_embedding") for k in ours["state"])
    for name, entry in torchs["state"].items():
        assert ours["state"][name].keys() == entry.keys()
        assert all(torch.equal(ours["state"][name][k], v) for k, v in entry.items()), name
    # what resume does with it: torch's setter on a fresh optimizer gives the same state
    fresh_policy, fresh = _trained_policy_and_optimizer()
    for state in fresh.state.values():
        for value in state.values():
            value.zero_()
    set_optimizer_state_dict(fresh_policy, fresh, ours, options=StateDictOptions(full_state_dict=True, strict=False))
    for (_, a), (_, b) in zip(sorted(fresh.state_dict()["state"].items()), sorted(optimizer.state_dict()["state"].items()),
                              strict=True):
        assert all(torch.equal(a[k], b[k]) for k in b)
