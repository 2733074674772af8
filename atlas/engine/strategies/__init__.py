"""`training.strategy`: how weights, gradients and optimizer state are laid out across processes.

The loop asks the strategy, and only the strategy, for what differs between layouts:

  ddp (auto)  replicated weights; one gradient all-reduce per optimizer step (also: a single process);
              with dynamic_batch_size, the manual-sync variant (ddp_manual_sync.py)
  fsdp        FSDP2: weights, gradients, optimizer state and the EMA sharded (fsdp.py)
  deepspeed   DeepSpeed ZeRO (`training.zero_stage`): optimizer state partitioned (1), and gradients (2),
              and weights with the EMA (3); at stages 1/2 weights (and so the EMA) stay whole (deepspeed.py)

One module per strategy: a DDP reader never opens DeepSpeed's private-attribute handling. Checkpoints do
not depend on the strategy: full weights in safetensors, the optimizer as a full state dict keyed by
parameter name. So a run resumes on another world size, or under another strategy.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from atlas.config.errors import ConfigError
from atlas.engine import distributed as D
from atlas.engine.config import TrainingConfig
from atlas.engine.strategies.base import OptimizerFactory, Strategy  # noqa: F401 - the interface

__all__ = ["OptimizerFactory", "Strategy", "StrategySettings", "build_strategy"]


@dataclass(frozen=True)
class StrategySettings:
    """What a strategy needs from the run plan (the loop passes the plan's values)."""

    mixed_precision: str
    micro_batch_size: int
    gradient_accumulation_steps: int
    dynamic_batch_size: bool


def build_strategy(tc: TrainingConfig, settings: StrategySettings, ctx: D.DistContext,
                   log: logging.Logger) -> Strategy:
    """The strategy the config asks for, or a ConfigError that says why it cannot run and what to do."""
    name = "ddp" if tc.strategy == "auto" else tc.strategy
    precision = settings.mixed_precision
    if name != "ddp" and not ctx.distributed:
        log.info(f"training.strategy={name} with one process: nothing to shard, training unsharded")
        name = "ddp"
    if name == "ddp":
        if settings.dynamic_batch_size and ctx.distributed:
            from atlas.engine.strategies.ddp_manual_sync import ManualSyncDDPStrategy

            return ManualSyncDDPStrategy(ctx, precision)
        return Strategy(ctx, precision)
    if settings.dynamic_batch_size:
        raise ConfigError(
            f"memory_optimization.dynamic_batch_size=true with training.strategy={name} on {ctx.world_size} "
            "processes: an out-of-memory error on one rank in the middle of a forward/backward leaves the "
            f"others waiting in a collective ({'a weight all-gather' if name == 'fsdp' else 'a ZeRO gradient reduce'}) "
            "that never completes, so the back-off cannot be agreed. Use training.strategy=ddp with "
            "dynamic_batch_size, or set dynamic_batch_size=false and a micro-batch that fits (atlas plan)."
        )
    if name == "fsdp":
        from atlas.engine.strategies.fsdp import FSDPStrategy

        return FSDPStrategy(ctx, precision)
    _check_deepspeed(precision, ctx)
    from atlas.engine.strategies.deepspeed import DeepSpeedStrategy

    return DeepSpeedStrategy(ctx, precision, tc.zero_stage, settings.micro_batch_size,
                             settings.gradient_accumulation_steps, tc.max_grad_norm)


def _check_deepspeed(mixed_precision: str, ctx: D.DistContext) -> None:
    """DeepSpeed is an optional extra: say what is missing before any rank starts building."""
    if mixed_precision == "fp16":
        raise ConfigError("training.mixed_precision=fp16 with training.strategy=deepspeed: use bf16 (no loss "
                          "scaling needed), or fp16 under ddp/fsdp (the loop's grad scaler)")
    if ctx.device.type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed's own switch; gloo on CPU
    try:
        import deepspeed  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"training.strategy=deepspeed needs the deepspeed package ({err}): "
                          "pip install 'atlas-vla[deepspeed]' (from a clone: pip install -e '.[deepspeed]')") from None
    try:
        from deepspeed.accelerator import get_accelerator

        accelerator = get_accelerator().device_name()
    except Exception as err:  # noqa: BLE001 - any failure here means DeepSpeed cannot run on this machine
        raise ConfigError(f"training.strategy=deepspeed: deepspeed is installed but has no usable accelerator "
                          f"here ({type(err).__name__}: {err}); use training.strategy=ddp or fsdp") from None
    if accelerator != ctx.device.type:
        raise ConfigError(f"training.strategy=deepspeed: DeepSpeed chose the {accelerator!r} accelerator but "
                          f"training runs on {ctx.device.type}; set DS_ACCELERATOR={ctx.device.type} or use "
                          "training.strategy=ddp or fsdp")
