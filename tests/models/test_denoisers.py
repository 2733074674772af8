"""The two denoisers of the generative heads: action tokens through the fusion transformer at every step
(`transformer`), or the transformer once per observation into a readout and a small MLP (`mlp`).
What the `mlp` denoiser is for is counted here on the real modules: transformer passes per loss and per
sampled chunk, and what several noise draws per observation cost."""

from __future__ import annotations

import pytest
import torch
from helpers import batch, meta, policy


def transformer_passes(p, call) -> int:
    """How many times the fusion transformer runs during call() (a forward hook counts, nothing replaced)."""
    calls = []
    handle = p.fusion.register_forward_hook(lambda *_: calls.append(1))
    try:
        call()
    finally:
        handle.remove()
    return len(calls)


def tiny(head: dict):
    m = meta(state_dim=6, action_dim=3)
    return m, policy(m, preset="atlas-tiny", action_horizon=4, head=head, language={"name": "task_embedding"})


@pytest.mark.parametrize("name", ["flow", "diffusion"])
def test_mlp_denoiser_runs_the_transformer_once_per_chunk(name: str) -> None:
    steps = 6
    m, per_step = tiny({"name": name, "num_inference_steps": steps})
    _, readout = tiny({"name": name, "num_inference_steps": steps, "denoiser": "mlp", "noise_samples": 3})
    obs = batch(m, horizon=4)
    with torch.no_grad():
        assert transformer_passes(per_step, lambda: per_step.sample_actions(obs)) == steps
        assert transformer_passes(readout, lambda: readout.sample_actions(obs)) == 1
        assert transformer_passes(readout, lambda: readout(obs)) == 1  # 3 noise draws, one pass
    chunk = readout.sample_actions(obs, generator=torch.Generator().manual_seed(0))
    assert chunk.shape == (4, 4, 3) and torch.isfinite(chunk).all()


def test_noise_samples_average_per_observation() -> None:
    """With k draws the per-element loss keeps the batch's shape: the mask and the mean over valid steps
    apply as with one draw, and the loss sum has the same scale (a mean over draws, not a sum)."""
    m, one = tiny({"name": "flow", "denoiser": "mlp"})
    _, four = tiny({"name": "flow", "denoiser": "mlp", "noise_samples": 4})
    four.load_state_dict(one.state_dict())
    obs = batch(m, horizon=4, b=8)
    torch.manual_seed(0)
    single = torch.stack([one(obs)["loss"] for _ in range(64)])
    torch.manual_seed(0)
    averaged = torch.stack([four(obs)["loss"] for _ in range(64)])
    assert one(obs)["num_valid"] == four(obs)["num_valid"]  # mask applied once per observation
    assert abs(averaged.mean() / single.mean() - 1) < 0.15  # same expected loss
    assert averaged.std() < 0.75 * single.std()  # four draws: about half the spread


@pytest.mark.parametrize(
    ("head", "field"),
    [({"name": "flow", "noise_samples": 2}, "noise_samples"), ({"name": "l1", "denoiser": "mlp"}, "denoiser")],
)
def test_invalid_combinations_name_the_field(head: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"model.head.{field}"):
        tiny(head)
