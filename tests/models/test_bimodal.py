"""Two equally likely action modes (+1 / -1) for the same observation: generative heads must sample
both, a regression head lands between them."""

from __future__ import annotations

import pytest
import torch

from tests.models.helpers import meta, policy

MODES = 1.0


def train_toy(head: dict, steps: int = 200, seed: int = 0):
    torch.manual_seed(seed)
    m = meta(state_dim=2, action_dim=1, tasks=1)
    p = policy(
        m,
        preset="atlas-tiny",
        action_horizon=2,
        language={"name": "none"},
        fusion={"width": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0},
        head=head,
    )
    opt = torch.optim.AdamW(p.parameters(), lr=3e-3, weight_decay=0.0)
    b = 128
    for _ in range(steps):
        sign = torch.where(torch.arange(b).view(b, 1, 1) % 2 == 0, -MODES, MODES)  # exactly 50/50
        batch = {
            "state": torch.zeros(b, 1, 2),
            "action": sign.expand(b, 2, 1).clone(),
            "action_mask": torch.ones(b, 2, dtype=torch.bool),
            "instruction": [""] * b,
        }
        out = p(batch)
        opt.zero_grad()
        (out["loss_sum"] / out["num_valid"]).backward()
        opt.step()
    p.eval()
    with torch.no_grad():
        obs = {"state": torch.zeros(512, 1, 2), "instruction": [""] * 512}
        samples = p.sample_actions(obs, generator=torch.Generator().manual_seed(1))
    return samples[..., 0]  # [samples, chunk steps]


def mode_fractions(samples: torch.Tensor) -> tuple[float, float, float]:
    """Fractions of samples near +1, near -1 (within 0.25), and elsewhere."""
    samples = samples.flatten()
    upper = ((samples - MODES).abs() < 0.25).float().mean().item()
    lower = ((samples + MODES).abs() < 0.25).float().mean().item()
    return upper, lower, 1 - upper - lower


@pytest.mark.parametrize(
    "head",
    [
        {"name": "flow", "num_inference_steps": 10},
        {"name": "diffusion", "num_train_timesteps": 100, "num_inference_steps": 10},
        {"name": "flow", "num_inference_steps": 10, "denoiser": "mlp", "noise_samples": 4},
        {"name": "diffusion", "num_train_timesteps": 100, "num_inference_steps": 10, "denoiser": "mlp"},
    ],
    ids=["flow", "diffusion", "flow-mlp-denoiser", "diffusion-mlp-denoiser"],
)
def test_generative_heads_sample_both_modes(head):
    upper, lower, between = mode_fractions(train_toy(head))
    print(f"{head['name']}: upper={upper:.2f} lower={lower:.2f} between={between:.2f}")
    assert upper > 0.25 and lower > 0.25, (upper, lower)
    assert between < 0.2


def test_diffusion_sample_prediction_also_bimodal():
    upper, lower, _ = mode_fractions(train_toy({"name": "diffusion", "prediction": "sample", "num_inference_steps": 10}))
    assert upper > 0.2 and lower > 0.2, (upper, lower)


def test_l1_head_averages_the_modes():
    samples = train_toy({"name": "l1"})
    upper, lower, between = mode_fractions(samples)
    print(f"l1: upper={upper:.2f} lower={lower:.2f} between={between:.2f} values={samples[0].tolist()}")
    # L1's optimum for two equal modes is any point between them (the median); never on a mode
    assert upper == 0.0 and lower == 0.0
    assert samples.std(dim=0).max() < 1e-4  # one answer per chunk step for one observation
