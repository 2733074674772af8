"""Frozen backbones stay bitwise unchanged while the rest trains; backbones load local weights."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from atlas.models.vision.config import VisionConfig
from atlas.models.vision.registry import build_backbone
from tests.models.helpers import batch, meta, policy

TINY_VGGT = {"name": "vggt", "width": 32, "depth": 2, "num_heads": 2, "image_size": 28}


def test_frozen_vggt_unchanged_after_optimizer_steps():
    m = meta(cameras=2, image=32)
    torch.manual_seed(0)
    p = policy(m, preset="atlas-tiny", vision=TINY_VGGT)
    assert p.vision.frozen and not any(q.requires_grad for q in p.vision.parameters())
    before = {k: v.clone() for k, v in p.state_dict().items()}
    opt = torch.optim.AdamW(p.parameters(), lr=1e-2, weight_decay=0.1)  # all params, as a careless loop would
    p.train()
    assert not p.vision.training  # frozen modules stay in eval mode
    for step in range(3):
        out = p(batch(m, 16, b=2, steps=2, image=32, seed=step))
        opt.zero_grad()
        (out["loss_sum"] / out["num_valid"]).backward()
        opt.step()
    after = p.state_dict()
    vision_keys = [k for k in before if k.startswith("vision.")]
    assert vision_keys and all(torch.equal(before[k], after[k]) for k in vision_keys)
    assert all(q.grad is None for q in p.vision.parameters())
    assert not torch.equal(before["fusion.blocks.0.attn.qkv.weight"], after["fusion.blocks.0.attn.qkv.weight"])
    assert not torch.equal(before["vision_proj.proj.weight"], after["vision_proj.proj.weight"])


def test_vggt_loads_aggregator_weights_from_safetensors(tmp_path):
    torch.manual_seed(0)
    source = build_backbone(VisionConfig(**TINY_VGGT))
    save_file({f"aggregator.{k}": v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "vggt.safetensors"))
    torch.manual_seed(1)
    loaded = build_backbone(VisionConfig(**TINY_VGGT, weights=str(tmp_path / "vggt.safetensors")))
    images = torch.rand(1, 3, 3, 28, 28)
    tokens, grid = loaded(images)
    assert grid == (2, 2) and tokens.shape == (1, 3, 4, 64)  # 2 x width: frame and global outputs
    torch.testing.assert_close(tokens, source(images)[0])


def test_vggt_global_attention_mixes_frames_frame_attention_does_not():
    """Changing one frame changes the other frames' tokens only through the global blocks."""
    torch.manual_seed(0)
    vggt = build_backbone(VisionConfig(**TINY_VGGT))
    images = torch.rand(1, 2, 3, 28, 28)
    changed = images.clone()
    changed[:, 1] = torch.rand(3, 28, 28)
    a, b = vggt(images)[0], vggt(changed)[0]
    width = a.shape[-1] // 2
    assert not torch.allclose(a[:, 0, :, width:], b[:, 0, :, width:])  # frame 0's global output saw frame 1


def test_resnet_and_vit_token_shapes_and_trainable_by_default():
    images = torch.rand(2, 3, 3, 64, 64)
    resnet = build_backbone(VisionConfig(name="resnet_small", width=8))
    tokens, grid = resnet(images)
    assert grid == (2, 2) and tokens.shape == (2, 3, 4, 64) and tokens.requires_grad
    vit = build_backbone(VisionConfig(name="vit", size="tiny", depth=1, patch_size=16, image_size=64))
    tokens, grid = vit(images)
    assert grid == (4, 4) and tokens.shape == (2, 3, 16, 192) and tokens.requires_grad
    assert build_backbone(VisionConfig(name="none")) is None


def test_hf_backbone_from_a_local_folder(tmp_path):
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=32,
                       patch_size=8)
    ViTModel(config).save_pretrained(tmp_path)
    hf = build_backbone(VisionConfig(name="hf", path=str(tmp_path)))
    tokens, grid = hf(torch.rand(1, 2, 3, 48, 48))  # resized to the model's 32 px
    assert hf.frozen and grid == (4, 4) and tokens.shape == (1, 2, 16, 32)


def test_unknown_backbone_names_the_choices():
    import pytest

    with pytest.raises(ValueError, match="resnet_small"):
        build_backbone(VisionConfig(name="resnet50"))
