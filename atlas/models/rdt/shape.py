"""The shape of an RDT network: the keyword arguments of RDT's `RDTRunner`, which its hub mixin writes
to a release's `config.json` (`action_dim`, `pred_horizon`, `config` = the `model:` block of RDT's
configs/base.yaml, token sizes, condition lengths and position-embedding configs).

Plain data and JSON only (no torch), so reading a release's shape stays cheap for configs and plans.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

ADAPTOR_PATTERN = re.compile(r"^(linear|mlp(\d+)x_gelu)$")
SCHEDULES = ("squaredcos_cap_v2", "linear", "scaled_linear")
PREDICTIONS = ("sample", "epsilon")


def adaptor_layers(kind: str) -> int:
    """`linear` → 1, `mlpNx_gelu` → N (RDT's `build_condition_adapter`); anything else is an error."""
    match = ADAPTOR_PATTERN.match(str(kind))
    if not match or (match.group(2) is not None and int(match.group(2)) < 1):
        raise ValueError(f"unknown RDT condition adaptor {kind!r}: expected 'linear' or 'mlpNx_gelu' (e.g. mlp2x_gelu)")
    return 1 if match.group(1) == "linear" else int(match.group(2))


@dataclass(frozen=True)
class RDTShape:
    """Every number that fixes an RDT network's tensors and its diffusion schedule."""

    action_dim: int = 128
    pred_horizon: int = 64
    hidden_size: int = 2048
    depth: int = 28
    num_heads: int = 32
    lang_token_dim: int = 4096
    img_token_dim: int = 1152
    state_token_dim: int = 128
    max_lang_cond_len: int = 1024
    img_cond_len: int = 4374
    lang_adaptor: str = "mlp2x_gelu"
    img_adaptor: str = "mlp2x_gelu"
    state_adaptor: str = "mlp3x_gelu"
    lang_pos_embed_config: list | None = None
    img_pos_embed_config: list | None = None
    num_train_timesteps: int = 1000
    num_inference_timesteps: int = 5
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "sample"
    clip_sample: bool = False
    extra: dict = field(default_factory=dict, compare=False)  # config keys RDT keeps but the network ignores (ema)

    def __post_init__(self) -> None:
        for kind in (self.lang_adaptor, self.img_adaptor, self.state_adaptor):
            adaptor_layers(kind)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"RDT hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
        if self.action_dim != self.state_token_dim:
            raise ValueError(f"RDT needs action_dim == state_token_dim (one unified space), got {self.action_dim} "
                             f"and {self.state_token_dim}")
        if self.beta_schedule not in SCHEDULES:
            raise ValueError(f"RDT beta_schedule {self.beta_schedule!r} is not one of {', '.join(SCHEDULES)}")
        if self.prediction_type not in PREDICTIONS:
            raise ValueError(f"RDT prediction_type {self.prediction_type!r} is not one of {', '.join(PREDICTIONS)}")

    # -- RDTRunner's keyword arguments (a release's config.json) --------------------------------------
    @classmethod
    def from_runner_kwargs(cls, kwargs: dict[str, Any]) -> RDTShape:
        """From `RDTRunner(**kwargs)`'s arguments; a missing or mistyped key raises KeyError/TypeError/ValueError."""
        model = kwargs["config"]
        rdt, noise = model["rdt"], model["noise_scheduler"]
        extra = {k: v for k, v in model.items() if k not in {"rdt", "noise_scheduler", "lang_adaptor", "img_adaptor",
                                                              "state_adaptor", "lang_token_dim", "img_token_dim",
                                                              "state_token_dim"}}
        return cls(
            action_dim=int(kwargs["action_dim"]), pred_horizon=int(kwargs["pred_horizon"]),
            hidden_size=int(rdt["hidden_size"]), depth=int(rdt["depth"]), num_heads=int(rdt["num_heads"]),
            lang_token_dim=int(kwargs["lang_token_dim"]), img_token_dim=int(kwargs["img_token_dim"]),
            state_token_dim=int(kwargs["state_token_dim"]), max_lang_cond_len=int(kwargs["max_lang_cond_len"]),
            img_cond_len=int(kwargs["img_cond_len"]),
            lang_adaptor=str(model["lang_adaptor"]), img_adaptor=str(model["img_adaptor"]),
            state_adaptor=str(model["state_adaptor"]),
            lang_pos_embed_config=_pairs(kwargs.get("lang_pos_embed_config")),
            img_pos_embed_config=_pairs(kwargs.get("img_pos_embed_config")),
            num_train_timesteps=int(noise["num_train_timesteps"]),
            num_inference_timesteps=int(noise["num_inference_timesteps"]),
            beta_schedule=str(noise["beta_schedule"]), prediction_type=str(noise["prediction_type"]),
            clip_sample=bool(noise.get("clip_sample", False)), extra=extra,
        )

    def to_runner_kwargs(self) -> dict[str, Any]:
        """The inverse of `from_runner_kwargs`: what RDT's hub mixin would write as config.json."""
        d = asdict(self)
        return {
            "action_dim": d["action_dim"], "pred_horizon": d["pred_horizon"],
            "config": {
                "lang_adaptor": d["lang_adaptor"], "img_adaptor": d["img_adaptor"], "state_adaptor": d["state_adaptor"],
                "lang_token_dim": d["lang_token_dim"], "img_token_dim": d["img_token_dim"],
                "state_token_dim": d["state_token_dim"],
                "rdt": {"hidden_size": d["hidden_size"], "depth": d["depth"], "num_heads": d["num_heads"],
                        "cond_pos_embed_type": "multimodal"},
                "noise_scheduler": {"type": "ddpm", "num_train_timesteps": d["num_train_timesteps"],
                                    "num_inference_timesteps": d["num_inference_timesteps"],
                                    "beta_schedule": d["beta_schedule"], "prediction_type": d["prediction_type"],
                                    "clip_sample": d["clip_sample"]},
                **self.extra,
            },
            "lang_token_dim": d["lang_token_dim"], "img_token_dim": d["img_token_dim"],
            "state_token_dim": d["state_token_dim"], "max_lang_cond_len": d["max_lang_cond_len"],
            "img_cond_len": d["img_cond_len"], "lang_pos_embed_config": d["lang_pos_embed_config"],
            "img_pos_embed_config": d["img_pos_embed_config"],
        }


def _pairs(config: Any) -> list | None:
    """JSON lists back into RDT's `(modality, length)` pairs (a grid stays a list)."""
    if config is None:
        return None
    return [(str(name), [int(x) for x in length] if isinstance(length, (list, tuple)) else int(length))
            for name, length in config]


def image_pos_config(history: int, cameras: int, patches: int) -> list:
    """RDT's train.py: `[("image", (img_history_size, num_cameras, -num_patches))]` (the patches carry the
    vision encoder's own positions)."""
    return [("image", [history, cameras, -patches])]


def lang_pos_config(max_len: int) -> list:
    """RDT's train.py: `[("lang", -tokenizer_max_length)]` (no position inside the instruction)."""
    return [("lang", -max_len)]
