"""DDP runs with find_unused_parameters=False: a trainable parameter that no loss reaches stops a
multi-process run at its first step. Every head and input path must give every trainable parameter a
gradient."""

from __future__ import annotations

import pytest
from helpers import batch, meta, policy


@pytest.mark.parametrize("head", ["flow", "diffusion", "l1", "flow+mlp", "diffusion+mlp"])
@pytest.mark.parametrize("cameras", [0, 1])
def test_one_backward_reaches_every_trainable_parameter(head: str, cameras: int) -> None:
    m = meta(cameras=cameras, image=16)
    name, _, denoiser = head.partition("+")
    head_cfg = {"name": name, **({"denoiser": denoiser, "noise_samples": 2} if denoiser else {})}
    p = policy(m, preset="atlas-tiny", action_horizon=4, head=head_cfg, language={"name": "task_embedding"})
    p(batch(m, horizon=4, image=16))["loss_sum"].backward()
    unreached = [n for n, t in p.named_parameters() if t.requires_grad and t.grad is None]
    assert not unreached, f"{head} head, {cameras} camera(s): no gradient for {unreached}"
