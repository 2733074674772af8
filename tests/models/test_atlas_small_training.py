"""atlas-small learns synthetic 64 px data on a CPU: the loss falls by at least half in 200 steps."""

from __future__ import annotations

import time

import pytest
import torch
from torch.utils.data import DataLoader

from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.data.registry import build_data
from atlas.data.transforms import BatchTransform
from atlas.models.config import ModelConfig
from atlas.models.registry import build_policy

STEPS = 200


@pytest.mark.slow
def test_atlas_small_loss_halves_in_200_steps():
    torch.manual_seed(0)
    cfg = ModelConfig(preset="atlas-small")
    data = build_data(
        DataConfig(format="synthetic", image_size=64, num_cameras=1, num_episodes=16, num_tasks=2),
        DataLoadingConfig(),
        cfg.action_horizon,
        seed=0,
    )
    policy = build_policy(cfg, data.meta, data.normalizer)
    transform = BatchTransform(data.normalizer)
    loader = DataLoader(data.train, batch_size=16, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.01)
    loader = DataLoader(data.train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(1))
    fixed = transform(next(iter(loader)), torch.device("cpu"), train=False)

    def fixed_loss() -> float:
        """Loss on one held batch with the same flow noise and times each call: a low-noise yardstick."""
        torch.manual_seed(1234)
        with torch.no_grad():
            return policy(fixed)["loss"].item()

    before = fixed_loss()
    losses: list[float] = []
    start = time.perf_counter()
    while len(losses) < STEPS:
        for raw in loader:
            out = policy(transform(raw, torch.device("cpu"), train=True))
            optimizer.zero_grad()
            (out["loss_sum"] / out["num_valid"]).backward()
            optimizer.step()
            losses.append(out["loss"].item())
            if len(losses) == STEPS:
                break
    elapsed = time.perf_counter() - start
    after = fixed_loss()
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    print(
        f"atlas-small: held-batch loss {before:.3f} -> {after:.3f} ({after / before:.1%}); "
        f"training loss first/last 20 steps {first:.3f} -> {last:.3f}; {elapsed / STEPS * 1e3:.0f} ms/step"
    )
    assert after <= 0.5 * before
    assert last < first
