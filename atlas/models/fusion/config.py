"""Config of the fusion transformer: the `model.fusion:` block."""

from __future__ import annotations

from pydantic import Field

from atlas.config.base import Section


class FusionConfig(Section):
    width: int = Field(128, gt=0, le=65536, description="Token width of the fusion transformer.")
    depth: int = Field(4, gt=0, le=1024, description="Number of pre-norm transformer blocks.")
    num_heads: int = Field(4, gt=0, description="Attention heads (must divide width).")
    mlp_ratio: float = Field(4.0, gt=0, description="MLP hidden width as a multiple of width (RDT: 1.0).")
    qk_norm: bool = Field(False, description="LayerNorm on queries and keys per head (RDT, VGGT).")
    cross_attention: bool = Field(
        False,
        description="RDT style: state/noise/action tokens self-attend and cross-attend to language+vision tokens; "
        "otherwise one joint self-attention sequence.",
    )
    alternate_cross_attention: bool = Field(
        False,
        description="RDT style (models/rdt/model.py: conds[i % 2]): block i cross-attends to the language token "
        "(even i) or to the vision tokens (odd i) instead of to both; needs cross_attention, a language encoder and "
        "a vision backbone. Half the blocks then read the long image sequence.",
    )
    adaptor_layers: int = Field(
        1, ge=1, le=3, description="Layers of the MLPs that project vision/language/state into the width (RDT: 2-3)."
    )
