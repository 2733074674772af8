"""Config of the vision backbone: the `model.vision:` block."""

from __future__ import annotations

from pydantic import Field

from atlas.config.base import Section


class VisionConfig(Section):
    name: str = Field("none", description="Backbone registry key: none, resnet_small, vit, vggt, hf.")
    size: str | None = Field(
        None, description="Size preset: vit tiny/small/base/so400m; vggt 1b. None: the backbone's default."
    )
    width: int | None = Field(
        None, gt=0, description="Override the size preset's width (resnet_small: first-stage channels)."
    )
    depth: int | None = Field(None, gt=0, description="Override the size preset's depth (vggt: frame/global pairs).")
    num_heads: int | None = Field(None, gt=0, description="Override the size preset's attention heads.")
    patch_size: int | None = Field(None, gt=0, description="vit/vggt patch size (None: the size preset's).")
    image_size: int | None = Field(
        None, gt=0, description="Resize frames to this square size before the backbone (None: the data's size)."
    )
    pool_grid: int | None = Field(
        None, gt=0, description="Average-pool each frame's feature grid to pool_grid x pool_grid tokens (None: keep all)."
    )
    freeze: bool | None = Field(
        None, description="Freeze the backbone (no grads, eval mode, run under no_grad). None: vggt/hf frozen, others trained."
    )
    weights: str | None = Field(
        None, description="Local safetensors file with backbone weights (vggt: VGGT-1B model.safetensors). None: random init."
    )
    path: str | None = Field(None, description="hf: local folder of a transformers vision model (never downloaded).")
