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
    # RDT-1B (github.com/thu-ml/RoboticsDiffusionTransformer), wired like RDT by the `rdt` policy
    # (atlas/models/rdt): 2048 wide, 28 blocks, 32 heads (configs/base.yaml), 64-step chunks in the 128-d
    # unified space, DDPM with 1000 steps predicting the sample, DPM-Solver++ in 5 steps, 2 history frames x
    # 3 cameras x 729 SigLIP-so400m tokens. Offline stand-ins for its frozen encoders until model.vision /
    # model.language name local SigLIP / T5 folders: Atlas's so400m ViT (same token shape, random weights)
    # and MiniLM's per-token embeddings (neither is part of RDT's 1.2 B count).
    "rdt-1b": {
        "action_horizon": 64,
        "unified_dim": 128,
        "vision": {"name": "vit", "size": "so400m", "patch_size": 14, "image_size": 384, "freeze": True},
        "language": {"name": "minilm", "freeze": True},
        # RDT's wiring, spelled in the fusion fields the planner reads (its depth probes step by 2 blocks:
        # one language, one image): cross-attention alternating language/image, QK-norm, MLP ratio 1.
        "fusion": {"width": 2048, "depth": 28, "num_heads": 32, "mlp_ratio": 1.0, "qk_norm": True,
                   "cross_attention": True, "alternate_cross_attention": True},
        "head": {
            "name": "diffusion",
            "num_train_timesteps": 1000,
            "num_inference_steps": 5,
            "prediction": "sample",
            "beta_schedule": "squaredcos_cap_v2",
        },
        "rdt": {"img_history_size": 2, "num_cameras": 3},
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


# Any RDT shape (set model.fusion/action_horizon/... or take them from a release's config.json): RDT-1B's
# defaults for everything not given.
PRESETS["rdt"] = {**PRESETS["rdt-1b"], "rdt": {"img_history_size": 2}}  # cameras: the data's
RDT_PRESETS = ("rdt", "rdt-1b")  # wired by atlas.models.rdt.policy.RDTPolicy, not AtlasPolicy


def merge_preset(data: dict) -> dict:
    """YAML fields over the preset's defaults (nested sections merge key by key)."""
    preset = data.get("preset", "mlp")
    if not isinstance(preset, str):
        raise ValueError(f"model.preset must be a preset name (one of {', '.join(PRESETS)}), got {preset!r}")
    # a policy registered in code may have no preset defaults
    defaults = PRESETS.get(preset) or SHAPE_PRESETS.get(preset, {})
    return deep_merge(defaults, data)


def deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
