"""The `rdt` policy: RDT's wiring (alternating conditions, the language mask), a release loaded into the
policy itself reproducing RDT's denoiser, the Policy interface (masked loss, sampling, save/load), camera
slots and history, and the shape a release's config.json gives the config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import atlas.models  # noqa: F401
from atlas.config.errors import ConfigError
from atlas.data.episodes import DatasetMeta
from atlas.data.normalize import Normalizer
from atlas.models.base import Policy
from atlas.models.config import ModelConfig
from atlas.models.rdt.policy import RDTPolicy
from atlas.models.rdt.release import RELEASE_MODULES, load_release_state_dict
from atlas.models.rdt.shape import RDTShape
from atlas.models.rdt.transformer import RDTTransformer
from atlas.models.registry import build_policy
from tests.models.helpers import batch, meta

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "rdt_tiny"
needs_fixture = pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"{FIXTURE} is not there")

TINY = {
    "preset": "rdt", "action_horizon": 6, "unified_dim": 16,
    "fusion": {"width": 32, "depth": 2, "num_heads": 4},
    "language": {"name": "task_embedding", "dim": 16},
    "vision": {"name": "resnet_small", "width": 8, "size": None, "patch_size": None, "image_size": None, "freeze": False},
    "rdt": {"img_history_size": 2, "max_lang_cond_len": 8},
}
# Encoders whose tokens have the fixture's shapes: 24-d language, 20-d image tokens, 9 patches per frame.
FIXTURE_ENCODERS = {
    "language": {"name": "task_embedding", "dim": 24},
    "vision": {"name": "vit", "size": "tiny", "width": 20, "depth": 1, "num_heads": 4, "patch_size": 8,
               "image_size": 24, "freeze": True},
}


def _transformer(depth: int) -> RDTTransformer:
    torch.manual_seed(0)
    net = RDTTransformer(RDTShape(action_dim=8, pred_horizon=4, hidden_size=32, depth=depth, num_heads=4,
                                  state_token_dim=8, max_lang_cond_len=6, img_cond_len=5)).eval()
    torch.nn.init.normal_(net.final_layer.ffn_final.fc2.weight)  # RDT zero-initialises the output layer
    return net


def test_blocks_alternate_language_then_images_and_honour_the_language_mask():
    x, freq, t = torch.randn(2, 5, 32), torch.tensor([10.0, 25.0]), torch.tensor([3, 900])
    lang, img = torch.randn(2, 6, 32), torch.randn(2, 5, 32)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    one, two = _transformer(1), _transformer(2)
    other_img = img + 1.0
    assert torch.equal(one(x, freq, t, lang, img, mask), one(x, freq, t, lang, other_img, mask))  # block 0: language
    assert not torch.allclose(two(x, freq, t, lang, img, mask), two(x, freq, t, lang, other_img, mask))
    padded = lang.clone()
    padded[1, 3:] += 5.0  # only tokens the mask hides
    assert torch.allclose(two(x, freq, t, lang, img, mask), two(x, freq, t, padded, img, mask), atol=1e-6)
    assert not torch.allclose(two(x, freq, t, lang, img, None), two(x, freq, t, padded, img, None))


@needs_fixture
def test_release_shape_fills_the_config_and_loads_into_the_policy():
    cfg = ModelConfig(preset="rdt", pretrained=str(FIXTURE), **FIXTURE_ENCODERS)
    assert (cfg.fusion.width, cfg.fusion.depth, cfg.fusion.num_heads) == (64, 4, 4)
    assert (cfg.action_horizon, cfg.unified_dim, cfg.head.num_inference_steps) == (8, 16, 5)
    assert (cfg.rdt.state_adaptor, cfg.rdt.img_history_size, cfg.rdt.num_cameras) == ("mlp3x_gelu", 2, 1)
    m = DatasetMeta(state_dim=8, action_dim=8, cameras=["front"], image_size=(24, 24), tasks=["t0"],
                    instructions={"t0": "do it"})
    policy = build_policy(cfg, m, Normalizer({}))
    result = policy.load_state_dict(load_release_state_dict(FIXTURE), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(k.split(".")[0] in ("vision", "language") for k in result.missing_keys)
    assert {k.split(".")[0] for k in policy.state_dict()} - {"vision", "language"} == set(RELEASE_MODULES)
    # the policy's own network gives RDT's denoiser output for RDT's tokens
    f = load_file(str(FIXTURE / "inputs.safetensors"))
    policy.eval()
    with torch.no_grad():
        cond = policy.condition(f["lang_tokens"], f["lang_mask"], f["img_tokens"], f["state_tokens"],
                                f["action_mask"], f["ctrl_freqs"])
        pred = policy.denoise(cond, f["noisy_action"], f["timesteps"])
    assert (pred - load_file(str(FIXTURE / "expected.safetensors"))["pred"]).abs().max() < 1e-5


@needs_fixture
def test_encoders_that_do_not_fit_the_release_are_named():
    with pytest.raises(ConfigError, match="lang_token_dim=24.*model.language"):
        cfg = ModelConfig(preset="rdt", pretrained=str(FIXTURE), language={"name": "task_embedding", "dim": 32},
                          vision=FIXTURE_ENCODERS["vision"])
        build_policy(cfg, meta(state_dim=8, action_dim=8, cameras=1, image=24), Normalizer({}))


@needs_fixture
def test_a_release_with_a_non_rdt_preset_is_named():
    with pytest.raises(ValueError, match="RDT's release folder: it needs model.preset rdt or rdt-1b"):
        ModelConfig(preset="atlas-base", pretrained=str(FIXTURE))


def test_policy_interface_masked_loss_sampling_and_save_load(tmp_path):
    m = meta(state_dim=8, action_dim=4, cameras=1, image=32, tasks=2)
    policy = build_policy(ModelConfig(**TINY), m, Normalizer({}))
    assert isinstance(policy, RDTPolicy) and policy.accepts_memory_options
    b = batch(m, 6, steps=2)
    torch.manual_seed(1)
    out = policy(b)
    assert set(out) >= {"loss", "loss_sum", "num_valid"} and out["num_valid"] == (6 + 6 * 3 - 3) * 4
    out["loss_sum"].backward()
    assert all(p.grad is not None for n, p in policy.named_parameters() if p.requires_grad)
    changed = dict(b, action=b["action"].clone())
    changed["action"][0, 3:] += 10.0  # padded steps of sample 0 (helpers.batch masks its second half)
    torch.manual_seed(1)
    assert torch.allclose(policy(changed)["loss_sum"], out["loss_sum"])
    g = torch.Generator().manual_seed(0)
    actions = policy.sample_actions(b, generator=g)
    assert actions.shape == (4, 6, 4) and torch.isfinite(actions).all()
    policy.save_pretrained(tmp_path / "p")
    again = Policy.from_pretrained(tmp_path / "p")
    assert isinstance(again, RDTPolicy)
    assert torch.equal(again.sample_actions(b, generator=torch.Generator().manual_seed(0)), actions)


def test_camera_slots_history_and_no_cameras():
    m = meta(state_dim=5, action_dim=3, cameras=1, image=32, tasks=2)
    cfg = ModelConfig(**{**TINY, "rdt": {"img_history_size": 2, "num_cameras": 3, "max_lang_cond_len": 8}})
    policy = build_policy(cfg, m, Normalizer({}))
    patches = policy.rdt_shape.img_cond_len // (2 * 3)
    assert policy.rdt_shape.img_pos_embed_config == [("image", [2, 3, -patches])]
    b = batch(m, 6, steps=1)  # one frame of one camera: history repeated, two background slots
    assert policy.sample_actions(b).shape == (4, 6, 3)
    with pytest.raises(ConfigError, match="num_cameras=3"):
        build_policy(cfg, meta(state_dim=5, action_dim=3, cameras=4, image=32), Normalizer({}))
    state_only = build_policy(ModelConfig(**TINY), meta(state_dim=5, action_dim=3), Normalizer({}))
    assert state_only.rdt_shape.img_cond_len == 1 and torch.isfinite(state_only(batch(meta(5, 3), 6))["loss"])


def test_unified_space_placement_and_indicators():
    """State in entries [0, state_dim), action in [0, action_dim) of the unified space, each with its own indicator."""
    m = meta(state_dim=5, action_dim=3)
    policy = build_policy(ModelConfig(**TINY), m, Normalizer({}))
    b = batch(m, 6)
    seen = {}
    policy.state_adaptor.register_forward_hook(lambda mod, inp, out: seen.setdefault(inp[0].shape[1], inp[0]))
    policy.eval()
    policy.sample_actions(b)
    state_in, action_in = seen[1], seen[6]
    assert torch.equal(state_in[0, 0, :5], b["state"][0, -1]) and (state_in[..., 5:16] == 0).all()
    assert (state_in[..., 16:21] == 1).all() and (state_in[..., 21:] == 0).all()
    assert (action_in[..., 16:19] == 1).all() and (action_in[..., 19:] == 0).all()


def test_memory_options_keep_the_loss_and_gradients():
    """Block-wise checkpointing and the efficient SDPA kernels change memory, not results; bf16 autocast runs."""
    m = meta(state_dim=5, action_dim=3, cameras=1, image=32)
    b = batch(m, 6, steps=2)
    results = []
    for ckpt, mea in ((False, False), (True, True)):
        torch.manual_seed(0)
        policy = build_policy(ModelConfig(**TINY), m, Normalizer({}), gradient_checkpointing=ckpt,
                              memory_efficient_attention=mea)
        torch.manual_seed(1)
        out = policy(b)
        out["loss_sum"].backward()
        results.append((out["loss_sum"].detach(), policy.model.blocks[1].cross_attn.kv.weight.grad.clone()))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = policy(b)
    out["loss_sum"].backward()
    assert torch.isfinite(out["loss"]) and policy.model.blocks[0].norm1.weight.grad.dtype == torch.float32


@needs_fixture
def test_model_pretrained_takes_rdt_release_weights_through_the_loader():
    """`model.pretrained: <RDT's release folder>` through the same loader `atlas train` calls: all 114 release
    tensors loaded bitwise, nothing missing or unexpected in the network, the encoders left to their folders."""
    from atlas.models.pretrained import load_into

    cfg = ModelConfig(preset="rdt", pretrained=str(FIXTURE), **FIXTURE_ENCODERS)
    m = DatasetMeta(state_dim=8, action_dim=8, cameras=["front"], image_size=(24, 24), tasks=["t0"],
                    instructions={"t0": "do it"})
    policy = build_policy(cfg, m, Normalizer({}))
    report = load_into(policy, cfg)
    release = load_release_state_dict(FIXTURE)
    assert sorted(report.loaded) == sorted(release) and len(report.loaded) == 114
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert any("come from model." in note for note in report.notes)
    state = policy.state_dict()
    assert all(torch.equal(state[name], tensor) for name, tensor in release.items())
