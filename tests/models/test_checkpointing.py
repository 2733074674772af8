"""Gradient checkpointing and the SDPA backend switch change memory, never the numbers."""

from __future__ import annotations

import copy

import torch
from torch.autograd.graph import saved_tensors_hooks
from torch.nn.attention import SDPBackend, sdpa_kernel

from tests.models.helpers import batch, meta, policy

FIELDS = dict(
    preset="atlas-tiny",
    action_horizon=8,
    vision={"name": "vit", "size": "tiny", "width": 32, "depth": 2, "num_heads": 2, "patch_size": 8, "image_size": 32},
    fusion={"width": 64, "depth": 4, "num_heads": 4},
)


def run(p, b, seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    """Loss, gradients and bytes of tensors autograd saved for backward."""
    saved = 0

    def pack(t: torch.Tensor):
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    p.zero_grad()
    torch.manual_seed(seed)
    with saved_tensors_hooks(pack, lambda t: t):
        out = p(b)
    (out["loss_sum"] / out["num_valid"]).backward()
    return out["loss"], {n: q.grad.clone() for n, q in p.named_parameters() if q.grad is not None}, saved


def test_checkpointing_same_loss_and_grads_fewer_saved_bytes():
    m = meta(cameras=2, image=32)
    torch.manual_seed(0)
    plain = policy(m, **FIELDS)
    ckpt = copy.deepcopy(plain)
    ckpt.set_gradient_checkpointing(True)
    b = batch(m, 8, b=4, steps=2, image=32)
    loss_a, grads_a, bytes_a = run(plain, b)
    loss_b, grads_b, bytes_b = run(ckpt, b)
    print(f"saved activations: plain={bytes_a / 1e6:.2f} MB checkpointed={bytes_b / 1e6:.2f} MB ratio={bytes_b / bytes_a:.3f}")
    torch.testing.assert_close(loss_a, loss_b, atol=1e-6, rtol=0)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 0
    assert any(n.startswith("vision.") for n in grads_a)  # the trainable ViT is checkpointed too
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-6, rtol=0, msg=name)
    assert bytes_b < 0.5 * bytes_a


def test_build_policy_passes_the_memory_options():
    m = meta()
    p = policy(m, preset="atlas-tiny")
    assert not p.fusion.gradient_checkpointing
    from atlas.data.normalize import Normalizer
    from atlas.models.config import ModelConfig
    from atlas.models.layers import Attention
    from atlas.models.registry import build_policy

    q = build_policy(ModelConfig(preset="atlas-tiny"), m, Normalizer({}), gradient_checkpointing=True, memory_efficient_attention=True)
    assert q.fusion.gradient_checkpointing
    assert all(a.memory_efficient for a in q.modules() if isinstance(a, Attention))


def test_memory_efficient_attention_same_outputs():
    m = meta(cameras=1, image=32)
    torch.manual_seed(0)
    math_policy = policy(m, **FIELDS)
    fast_policy = copy.deepcopy(math_policy)
    from atlas.models.layers import set_memory_efficient_attention

    set_memory_efficient_attention(fast_policy, True)
    b = batch(m, 8, b=3, image=32)
    # the reference is pinned to the math kernel: unpinned, CPU dispatches both sides to the same flash
    # kernel and the test would compare that kernel with itself
    with sdpa_kernel([SDPBackend.MATH]):
        loss_a, grads_a, _ = run(math_policy, b)
    loss_b, grads_b, _ = run(fast_policy, b)
    torch.testing.assert_close(loss_a, loss_b, atol=1e-5, rtol=1e-5)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-5, rtol=1e-4, msg=name)
