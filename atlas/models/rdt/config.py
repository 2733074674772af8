"""Config of the `rdt` policy's own parts: the `model.rdt:` block.

The network's size comes from the shared fields (`model.fusion.width/depth/num_heads` = RDT's
hidden_size/depth/num_heads, `model.action_horizon` = pred_horizon, `model.unified_dim` =
state_token_dim, `model.head.*` = the noise scheduler); this block holds what only RDT has.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from atlas.config.base import Section
from atlas.models.rdt.shape import adaptor_layers


class RDTConfig(Section):
    lang_adaptor: str = Field("mlp2x_gelu", description="rdt: language token adaptor, `linear` or `mlpNx_gelu` (RDT-1B: mlp2x_gelu).")
    img_adaptor: str = Field("mlp2x_gelu", description="rdt: image token adaptor, `linear` or `mlpNx_gelu` (RDT-1B: mlp2x_gelu).")
    state_adaptor: str = Field(
        "mlp3x_gelu", description="rdt: state/action token adaptor, `linear` or `mlpNx_gelu` (RDT-1B: mlp3x_gelu)."
    )
    max_lang_cond_len: int = Field(
        1024, gt=0, description="rdt: language tokens at most (RDT: the T5 tokenizer's max length, 1024); longer "
        "instructions are truncated."
    )
    img_history_size: int = Field(
        2, gt=0, description="rdt: frames of image history the model sees (RDT-1B: 2); the last ones of the batch's "
        "`data.obs_horizon` frames, the first repeated when there are fewer."
    )
    num_cameras: int | None = Field(
        None, gt=0, description="rdt: camera slots (RDT-1B: 3). None: the data's cameras. Slots the data lacks get "
        "a mean-grey background frame, as RDT's own data pipeline does."
    )
    lang_token_dim: int | None = Field(
        None, gt=0, description="rdt: expected width of the language tokens (RDT-1B's T5-XXL: 4096); None: whatever "
        "model.language gives. Set (e.g. from a release) it is checked against the encoder."
    )
    img_token_dim: int | None = Field(
        None, gt=0, description="rdt: expected width of the image tokens (SigLIP so400m: 1152); None: whatever "
        "model.vision gives. Set it is checked against the backbone."
    )
    control_frequency: float = Field(
        25.0, gt=0, description="rdt: the robot's control frequency in Hz, an input of RDT (its "
        "configs/dataset_control_freq.json); a batch's `ctrl_freq` overrides it."
    )

    @field_validator("lang_adaptor", "img_adaptor", "state_adaptor")
    @classmethod
    def _adaptor(cls, value: str) -> str:
        adaptor_layers(value)
        return value
