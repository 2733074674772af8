"""Preset defaults (`model.preset`): a preset fills every model field the YAML leaves unset.

Plain dicts (no torch) so that loading a config stays cheap. `mlp` is the stand-in baseline.
"""

from __future__ import annotations

PRESETS: dict[str, dict] = {
    "mlp": {},
    # CI: < 1 M parameters, a few ms per step on CPU.
    "atlas-tiny": {
        "vision": {"name": "resnet_small", "width": 8},
        "language": {"name": "task_embedding", "dim": 32},
        "fusion": {"width": 64, "depth": 2, "num_heads": 4, "mlp_ratio": 2.0},
        "head": {"name": "flow", "num_inference_steps": 10},
    },
    # Trains on a 2-core CPU: one 64 px camera, state, frozen MiniLM (cached per instruction).
    "atlas-small": {
        "vision": {"name": "resnet_small", "width": 32},
        "language": {"name": "minilm", "freeze": True},
        "fusion": {"width": 128, "depth": 4, "num_heads": 4, "mlp_ratio": 4.0},
        "head": {"name": "flow", "num_inference_steps": 10},
    },
    "atlas-base": {
        "vision": {"name": "vit", "size": "base", "patch_size": 16, "image_size": 224, "pool_grid": 7},
        "language": {"name": "minilm", "freeze": True},
        "fusion": {"width": 768, "depth": 12, "num_heads": 12, "mlp_ratio": 4.0},
        "head": {"name": "flow", "num_inference_steps": 10},
    },
    "atlas-vggt": {
        "vision": {"name": "vggt", "size": "1b", "image_size": 518, "pool_grid": 8, "freeze": True},
        "language": {"name": "minilm", "freeze": True},
        "fusion": {"width": 768, "depth": 12, "num_heads": 12, "mlp_ratio": 4.0, "qk_norm": True},
        "head": {"name": "flow", "num_inference_steps": 10},
    },
    # RDT-1B's shape (github.com/thu-ml/RoboticsDiffusionTransformer): SigLIP-so400m vision (frozen),
    # 2048 wide, 28 blocks, 32 heads, FFN ratio 1, QK-norm, cross-attention alternating between the language
    # and the image condition block by block (models/rdt/model.py `conds[i % 2]`), 2 history frames x 3 cameras x
    # 729 SigLIP tokens (configs/base.yaml img_history_size, num_cameras),
    # 128-d unified state/action space, 64-step chunks, DDPM with 1000 steps predicting the sample.
    # MiniLM stands in for RDT's frozen T5-XXL (which is not part of RDT's 1.2 B count either).
    "rdt-1b": {
        "action_horizon": 64,
        "unified_dim": 128,
        "vision": {"name": "vit", "size": "so400m", "patch_size": 14, "image_size": 384, "freeze": True},
        "language": {"name": "minilm", "freeze": True},
        "fusion": {
            "width": 2048,
            "depth": 28,
            "num_heads": 32,
            "mlp_ratio": 1.0,
            "qk_norm": True,
            "cross_attention": True,
            "alternate_cross_attention": True,
            "adaptor_layers": 2,
        },
        "head": {
            "name": "diffusion",
            "num_train_timesteps": 1000,
            "num_inference_steps": 5,
            "prediction": "sample",
            "beta_schedule": "squaredcos_cap_v2",
        },
    },
}

# Planning-only shapes of published VLAs (atlas/models/shapes/presets.py holds their dimensions and sources):
# the stacks' depth here drives the planner's reduced-depth probes; `<name>-lora` is the tool's LoRA recipe.
# (action horizon, decoder width, decoder depth, heads, deepest vision tower)
_SHAPES = {"pi0": (50, 2048, 18, 8, 27), "pi05": (50, 2048, 18, 8, 27), "pi0-fast": (50, 2048, 18, 8, 27),
           "smolvla": (50, 960, 16, 15, 12), "openvla-7b": (8, 4096, 32, 32, 27)}
SHAPE_PRESETS: dict[str, dict] = {
    variant: {"action_horizon": horizon, "fusion": {"width": width, "depth": depth, "num_heads": heads},
              "vision": {"name": "vit", "depth": vision}}
    for name, (horizon, width, depth, heads, vision) in _SHAPES.items() for variant in (name, f"{name}-lora")
}


def merge_preset(data: dict) -> dict:
    """YAML fields over the preset's defaults (nested sections merge key by key)."""
    preset = data.get("preset", "mlp")
    if not isinstance(preset, str):
        raise ValueError(f"model.preset must be a preset name (one of {', '.join(PRESETS)}), got {preset!r}")
    # a policy registered in code may have no preset defaults
    defaults = PRESETS.get(preset) or SHAPE_PRESETS.get(preset, {})
    return _deep_merge(defaults, data)


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
