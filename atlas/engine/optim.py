"""AdamW parameter groups from `training.lr_multipliers`: per-module LR, freezing, weight-decay exclusions."""

from __future__ import annotations

import torch
from torch import nn

from atlas.config.errors import ConfigError

# Names users bring from other codebases (seed 001 says `lang_encoder`) → our module prefixes.
MODULE_ALIASES = {
    "lang_encoder": "language",
    "language_encoder": "language",
    "text_encoder": "language",
    "vision_encoder": "vision",
    "vision_backbone": "vision",
    "vggt": "vision",
}


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def resolve_multipliers(model: nn.Module, multipliers: dict[str, float]) -> tuple[dict[str, float], list[str]]:
    """Map each key (alias-resolved) to a prefix that names real parameters; unknown keys are errors."""
    names = [n for n, _ in model.named_parameters()]
    resolved, notes = {}, []
    for key, value in multipliers.items():
        if value < 0:
            raise ConfigError(f"training.lr_multipliers.{key}={value}: multipliers must be >= 0 (0 freezes)")
        prefix = key
        if not any(_matches(n, prefix) for n in names) and key in MODULE_ALIASES:
            prefix = MODULE_ALIASES[key]
            notes.append(f"lr_multipliers: '{key}' is read as '{prefix}' (alias)")
        if not any(_matches(n, prefix) for n in names):
            top = sorted({n.split(".")[0] for n in names})
            raise ConfigError(
                f"training.lr_multipliers.{key}: no parameter name starts with '{prefix}'; modules: {', '.join(top)}"
            )
        resolved[prefix] = value
    return resolved, notes


def freeze_zero_multipliers(model: nn.Module, multipliers: dict[str, float]) -> dict[str, float]:
    """Parameters under a prefix with multiplier 0 stop training (requires_grad False); the resolved map.
    The optimizer's groups and the planner's probe both freeze through this one rule."""
    resolved, _ = resolve_multipliers(model, multipliers)
    _freeze(model, resolved)
    return resolved


def _freeze(model: nn.Module, resolved: dict[str, float]) -> None:
    for name, param in model.named_parameters():
        if _multiplier_for(name, resolved)[1] == 0.0:
            param.requires_grad_(False)


def _multiplier_for(name: str, resolved: dict[str, float]) -> tuple[str, float]:
    best = ""
    for prefix in resolved:
        if _matches(name, prefix) and len(prefix) > len(best):
            best = prefix
    return (best, resolved[best]) if best else ("default", 1.0)


def _no_decay(name: str, param: torch.Tensor) -> bool:
    """Biases and norm weights (all 1-d tensors) get no weight decay."""
    return param.ndim <= 1 or name.endswith(".bias")


def build_param_groups(
    model: nn.Module, multipliers: dict[str, float], weight_decay: float
) -> tuple[list[dict], list[str]]:
    """Groups for AdamW plus log lines listing each group with its parameter count.

    A multiplier of 0 freezes the module: requires_grad False and absent from the optimizer, so its
    weights stay bitwise unchanged. Parameters the model already froze are listed as frozen.
    """
    resolved, lines = resolve_multipliers(model, multipliers)
    _freeze(model, resolved)
    groups: dict[tuple[str, bool], dict] = {}
    frozen = 0
    for name, param in model.named_parameters():
        prefix, mult = _multiplier_for(name, resolved)
        if not param.requires_grad:
            frozen += param.numel()
            continue
        no_decay = _no_decay(name, param)
        key = (prefix, no_decay)
        group = groups.setdefault(
            key,
            {
                "params": [],
                "name": prefix + (".no_decay" if no_decay else ""),
                "lr_multiplier": mult,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "num_parameters": 0,
            },
        )
        group["params"].append(param)
        group["num_parameters"] += param.numel()
    ordered = [groups[k] for k in sorted(groups)]
    for g in ordered:
        lines.append(
            f"param group {g['name']}: {g['num_parameters']:,} params, lr x{g['lr_multiplier']}, "
            f"weight_decay {g['weight_decay']}"
        )
    lines.append(f"frozen: {frozen:,} params")
    return ordered, lines


# Devices with a fused (one kernel for every tensor) AdamW in torch >= 2.4.
FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")


def adamw_kernel(params: list[torch.Tensor], fused: bool = True) -> dict:
    """AdamW's implementation: fused where the device has one, else foreach. torch's default on CPU is a
    Python loop over tensors, several times slower for many small tensors (benchmarks/optimizer_kernel.py,
    figures in benchmarks/RESULTS.md). Sharded strategies ask for foreach
    (`fused=False`): their parameters are DTensors or ZeRO partitions the fused kernel is not meant for."""
    devices = {p.device.type for p in params}
    if fused and len(devices) == 1 and devices <= set(FUSED_DEVICES) and all(p.dtype.is_floating_point for p in params):
        return {"fused": True}
    return {"foreach": True}


def build_optimizer(groups: list[dict], lr: float, betas: tuple[float, float], eps: float,
                    fused: bool = True) -> torch.optim.AdamW:
    optimizer_groups = [{k: v for k, v in g.items() if k != "num_parameters"} for g in groups]
    for g in optimizer_groups:
        g["lr"] = lr * g["lr_multiplier"]
    params = [p for g in optimizer_groups for p in g["params"]]
    return torch.optim.AdamW(optimizer_groups, lr=lr, betas=betas, eps=eps, **adamw_kernel(params, fused))


def named_optimizer_state(policy: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state keyed by parameter name, as torch's `get_optimizer_state_dict(full_state_dict=True)`
    writes it for whole (unsharded) tensors: {"state": {name: {...}}, "param_groups": [{..., "params": [name, ...]}]}.
    The tensors are the optimizer's own (not copies): a checkpoint writes them at once, or copies them first."""
    names = {id(param): name for name, param in policy.named_parameters()}
    state, groups = {}, []
    for group in optimizer.param_groups:
        params = [names[id(param)] for param in group["params"]]
        for name, param in zip(params, group["params"], strict=True):
            if param in optimizer.state:
                state[name] = dict(optimizer.state[param])
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": params})
    return {"state": state, "param_groups": groups}
