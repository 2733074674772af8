"""Parameter counts per preset (built on the meta device) equal a closed-form formula of the shapes."""

from __future__ import annotations

import pytest

from atlas.models.config import ModelConfig
from atlas.models.counting import count_parameters
from tests.models.helpers import meta

TIME_FEATURES = 256


def linear(i: int, o: int) -> int:
    return i * o + o


def block(d: int, heads: int, mlp: int, qk_norm: bool = False, cross: bool = False, layer_scale: bool = False) -> int:
    qk = 4 * (d // heads) if qk_norm else 0
    n = 2 * d + linear(d, 3 * d) + linear(d, d) + qk + 2 * d + linear(d, mlp) + linear(mlp, d)
    if cross:
        n += 2 * d + linear(d, d) + linear(d, 2 * d) + linear(d, d) + qk
    return n + (2 * d if layer_scale else 0)


def adaptor(i: int, o: int, layers: int) -> int:
    return linear(i, o) + (layers - 1) * linear(o, o)


def resnet(w: int) -> int:
    n = 25 * 3 * w + 2 * w
    cin = w
    for cout in (w, 2 * w, 4 * w, 8 * w):
        n += 9 * cin * cout + 9 * cout * cout + 4 * cout + (cin * cout + 2 * cout if cin != cout else 0)
        cin = cout
    return n


def vit(width: int, depth: int, heads: int, mlp: int, patch: int, image: int) -> int:
    return 3 * patch * patch * width + width + (image // patch) ** 2 * width + depth * block(width, heads, mlp) + 2 * width


def vggt(width: int = 1024, depth: int = 24, heads: int = 16) -> int:
    dino = 3 * 14 * 14 * width + width + 5 * width + (1 + 37 * 37) * width + depth * block(width, heads, 4 * width, layer_scale=True) + 2 * width
    return dino + 2 * width + 8 * width + 2 * depth * block(width, heads, 4 * width, qk_norm=True, layer_scale=True)


def minilm() -> int:
    d, f = 384, 1536
    layer = 4 * linear(d, d) + 2 * d + linear(d, f) + linear(f, d) + 2 * d
    return (30522 + 512 + 2) * d + 2 * d + 6 * layer + linear(d, d)


def head(name: str, a: int, h: int, d: int, denoiser: str = "transformer", mlp_width: int = 256, mlp_depth: int = 3) -> int:
    if denoiser == "mlp":  # readout query + norm, MLP from (summary, chunk, 64 time features), residual blocks
        w = mlp_width
        return d + 2 * d + linear(d + h * a + 64, w) + mlp_depth * (2 * w + linear(w, w)) + 2 * w + linear(w, h * a)
    n = linear(a, d) + h * d + 2 * d + linear(d, a)
    return n if name == "l1" else n + linear(TIME_FEATURES, d) + linear(d, d)


def expected(cfg: ModelConfig, state_dim: int, action_dim: int, cams: int, tasks: int) -> dict[str, int]:
    d, f, layers = cfg.fusion.width, cfg.fusion, cfg.fusion.adaptor_layers
    u = cfg.unified_dim
    parts = {
        "state_proj": adaptor(2 * u if u else state_dim, d, layers),
        "fusion": f.depth * block(d, f.num_heads, int(d * f.mlp_ratio), f.qk_norm, f.cross_attention) + 2 * d,
        "action_head": head(cfg.head.name, u or action_dim, cfg.action_horizon, d, cfg.head.denoiser, cfg.head.mlp_width,
                            cfg.head.mlp_depth),
    }
    lang = {"minilm": minilm(), "task_embedding": (tasks + 1) * cfg.language.dim}[cfg.language.name]
    lang_dim = 384 if cfg.language.name == "minilm" else cfg.language.dim
    parts.update(language=lang, language_proj=adaptor(lang_dim, d, layers))
    v = cfg.vision
    if v.name == "resnet_small":
        parts["vision"], out = resnet(v.width), 8 * v.width
    elif v.name == "vit":
        sizes = {"base": (768, 12, 12, 3072), "so400m": (1152, 27, 16, 4304)}[v.size]
        parts["vision"], out = vit(*sizes, v.patch_size, v.image_size), sizes[0]
    else:
        parts["vision"], out = vggt(), 2048
    parts["vision_proj"] = adaptor(out, d, layers) + cams * d
    return parts


@pytest.mark.parametrize("preset", ["atlas-tiny", "atlas-small", "atlas-base", "atlas-vggt"])
def test_counts_match_formula(preset):
    m = meta(state_dim=8, action_dim=7, cameras=2, image=64, tasks=3)
    counts = count_parameters(preset, m)
    formula = expected(ModelConfig(preset=preset), 8, 7, 2, 3)
    got = {part: c["trainable"] + c["frozen"] for part, c in counts.items() if part != "total"}
    assert got == formula
    total = counts["total"]
    print(f"{preset}: trainable={total['trainable']:,} frozen={total['frozen']:,}")
    if preset == "atlas-tiny":
        assert total["trainable"] + total["frozen"] < 1_000_000
    if preset == "atlas-small":
        assert 1_000_000 < total["trainable"] < 10_000_000 and counts["language"]["trainable"] == 0
    if preset == "atlas-vggt":
        assert counts["vision"]["trainable"] == 0 and 0.85e9 < counts["vision"]["frozen"] < 0.95e9  # VGGT aggregator


def test_mlp_denoiser_counts_match_formula():
    m = meta(state_dim=39, action_dim=4, cameras=1, image=64, tasks=10)
    model = {"preset": "atlas-small", "head": {"name": "flow", "denoiser": "mlp", "mlp_width": 96, "mlp_depth": 2}}
    counts = count_parameters(ModelConfig(**model), m)
    got = {part: c["trainable"] + c["frozen"] for part, c in counts.items() if part != "total"}
    assert got == expected(ModelConfig(**model), 39, 4, 1, 10)


def rdt_network(width: int, depth: int, heads: int, horizon: int, unified: int, lang_len: int, img_len: int) -> int:
    """RDT's transformer (models/rdt/model.py): RMSNorm blocks with self- and cross-attention (QK RMSNorm),
    a ratio-1 MLP; two 256-feature embedders, three position tables, the final RMSNorm + MLP."""
    w, hd = width, width // heads
    blk = 3 * w + linear(w, 3 * w) + linear(w, w) + 2 * hd + linear(w, w) + linear(w, 2 * w) + linear(w, w) + 2 * hd
    blk += 2 * linear(w, w)
    embedders = 2 * (linear(TIME_FEATURES, w) + linear(w, w))
    return depth * blk + embedders + (horizon + 3 + lang_len + img_len) * w + w + linear(w, w) + linear(w, unified)


def test_rdt_1b_counts_match_rdts_formula_and_its_published_size():
    """RDT-1B's own count (its diffusion transformer and adaptors; frozen SigLIP/T5 excluded) is ~1.23 B."""
    counts = count_parameters("rdt-1b", meta(state_dim=14, action_dim=14, cameras=3, tasks=1))
    got = {part: c["trainable"] + c["frozen"] for part, c in counts.items() if part not in ("total", "vision", "language")}
    w = 2048
    assert got == {
        "model": rdt_network(w, 28, 32, 64, 128, 1024, 2 * 3 * 729),
        "lang_adaptor": adaptor(384, w, 2),  # MiniLM's tokens stand in for T5-XXL's 4096-d ones
        "img_adaptor": adaptor(1152, w, 2),
        "state_adaptor": adaptor(2 * 128, w, 3),
    }
    trainable = counts["total"]["trainable"]
    with_t5 = trainable + adaptor(4096, w, 2) - adaptor(384, w, 2)
    print(f"rdt-1b trainable={trainable:,} ({trainable / 1.23e9 - 1:+.1%} vs 1.23 B); with T5-XXL tokens {with_t5:,}")
    assert abs(trainable / 1.23e9 - 1) < 0.05 and abs(with_t5 / 1.23e9 - 1) < 0.05
    assert counts["vision"]["trainable"] == 0 and counts["language"]["trainable"] == 0
