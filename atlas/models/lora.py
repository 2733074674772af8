"""LoRA adapters (Hu et al. 2021) on the policy's nn.Linear layers: y = W x + b + (alpha / r) · B A dropout(x).

Our own small module rather than `peft`: peft wraps each layer as `base_layer` (so `fusion.blocks.0.attn.qkv.weight`
becomes `...qkv.base_layer.weight`) and the model as `base_model.model`, which would rename every tensor that
base checkpoints, `training.lr_multipliers` prefixes, `model.pretrained_reinit` and the strategies' state-dict
handling refer to. `LoRALinear` *is* an nn.Linear that keeps its `weight` and `bias` under their own names and
adds `lora_A` [r, in] and `lora_B` [out, r] beside them, so a base checkpoint loads into a LoRA policy as is, and a
LoRA checkpoint is the base's tensors plus the adapters. `lora_B` starts at zero: a fresh adapter changes nothing.

Applied in the policy's constructor (`apply_lora`), so every builder (training, `from_pretrained`, the planner's
meta/fake models) sees the same parameters. `merge_lora_state` folds adapters into the base weights of a saved
state dict (W + (alpha / r) B A): what `atlas export --merge-lora` writes and what loading a LoRA fine-tune as a
new run's pretrained base uses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from atlas.config.errors import ConfigError

ADAPTER_NAMES = ("lora_A", "lora_B")


class LoRALinear(nn.Linear):
    """nn.Linear with a low-rank update; the base weight and bias are frozen by `apply_lora`."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight  # the same Parameter objects: names and values unchanged
        self.bias = base.bias
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear (and peft) initialise A
        self.rank = rank
        self.scaling = alpha / rank
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)
        return F.linear(x, self.weight, self.bias) + update * self.scaling

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, scaling={self.scaling:g}"


def _matches(name: str, target: str) -> bool:
    """A target is a module prefix (`fusion`, `fusion.blocks.0`) or a module name suffix (`qkv`, `attn.proj`)."""
    return name == target or name.startswith(target + ".") or name.endswith("." + target)


def target_linears(model: nn.Module, targets: list[str]) -> list[str]:
    """Names of the nn.Linear layers the targets select; a target selecting none is a ConfigError."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and not isinstance(m, LoRALinear)]
    for target in targets:
        if not any(_matches(n, target) for n in linears):
            tops = sorted({n.split(".")[0] for n in linears})
            raise ConfigError(f"model.lora.target_modules: {target!r} selects no nn.Linear layer; "
                              f"modules with linear layers: {', '.join(tops)}")
    return [n for n in linears if any(_matches(n, t) for t in targets)]


def apply_lora(model: nn.Module, cfg) -> list[str]:
    """Swap the targeted linears for LoRALinear, then freeze everything but the adapters and
    `cfg.trainable_modules`. Returns the adapted layer names (empty when cfg is None: LoRA off)."""
    if cfg is None:
        return []
    names = target_linears(model, cfg.target_modules)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), cfg.rank, cfg.alpha, cfg.dropout))
    params = dict(model.named_parameters())
    for prefix in cfg.trainable_modules:
        if not any(n == prefix or n.startswith(prefix + ".") for n in params):
            raise ConfigError(f"model.lora.trainable_modules: no parameter name starts with {prefix!r}; modules: "
                              f"{', '.join(sorted({n.split('.')[0] for n in params}))}")
    for name, param in params.items():
        keep = is_adapter(name) or any(name == p or name.startswith(p + ".") for p in cfg.trainable_modules)
        if not keep:
            param.requires_grad_(False)
    return names


def is_adapter(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in ADAPTER_NAMES


def adapter_parameters(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if is_adapter(n))


def merge_lora_state(state: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """A state dict with every `X.lora_A`/`X.lora_B` pair folded into `X.weight` (in float32, cast back)
    and the adapters dropped: the weights of the same layers as plain nn.Linear. The rank is read off A."""
    merged = {k: v for k, v in state.items() if not is_adapter(k)}
    for key in state:
        if not key.endswith(".lora_A"):
            continue
        layer = key[: -len(".lora_A")]
        a, b, weight = state[key], state[f"{layer}.lora_B"], state[f"{layer}.weight"]
        scaling = alpha / a.shape[0]
        merged[f"{layer}.weight"] = (weight.float() + scaling * (b.float() @ a.float())).to(weight.dtype)
    return merged
