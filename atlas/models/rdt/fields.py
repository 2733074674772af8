"""A release's `config.json` as `model:` fields, so `model.pretrained: <RDT release>` builds exactly the
network whose tensors the release holds (the YAML's own fields still win). Torch-free: configs load fast."""

from __future__ import annotations

from pathlib import Path

from atlas.models.rdt.shape import RDTShape


def shape_fields(shape: RDTShape) -> dict:
    """RDTShape → the ModelConfig fields that fix it (see atlas/models/rdt/config.py for the mapping)."""
    rdt = {
        "lang_adaptor": shape.lang_adaptor, "img_adaptor": shape.img_adaptor, "state_adaptor": shape.state_adaptor,
        "max_lang_cond_len": shape.max_lang_cond_len, "lang_token_dim": shape.lang_token_dim,
        "img_token_dim": shape.img_token_dim,
    }
    image = dict(shape.img_pos_embed_config or [])
    grid = image.get("image")
    if isinstance(grid, (list, tuple)) and len(grid) == 3:  # RDT's (history, cameras, -patches)
        rdt.update(img_history_size=abs(int(grid[0])), num_cameras=abs(int(grid[1])))
    return {
        "action_horizon": shape.pred_horizon,
        "unified_dim": shape.state_token_dim,
        "fusion": {"width": shape.hidden_size, "depth": shape.depth, "num_heads": shape.num_heads},
        "head": {"name": "diffusion", "num_train_timesteps": shape.num_train_timesteps,
                 "num_inference_steps": shape.num_inference_timesteps, "beta_schedule": shape.beta_schedule,
                 "prediction": shape.prediction_type},
        "rdt": rdt,
    }


def release_fields(path: str | Path) -> dict:
    """The fields of an RDT release folder's config.json; {} for anything else (an Atlas run, a missing
    folder at planning time): other kinds of `model.pretrained` are not this module's business."""
    from atlas.models.rdt.release import is_rdt_release, read_release_config

    return shape_fields(read_release_config(path)) if is_rdt_release(path) else {}
