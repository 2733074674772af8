"""Memory per GPU, itemized, for DDP / FSDP / DeepSpeed ZeRO-1/2/3.

Bytes per trainable parameter Ψ (N = data-parallel processes):
  DDP, torch autocast:     fp32 weights 4 + fp32 grads 4 + Adam m,v 8          = 16Ψ replicated
  ZeRO (bf16/fp16):        bf16 weights 2 + bf16 grads 2 + fp32 master,m,v 12 = 16Ψ replicated at stage 0
     ZeRO-1: 4Ψ + 12Ψ/N    ZeRO-2: 2Ψ + 14Ψ/N    ZeRO-3: 16Ψ/N   (DeepSpeed / ZeRO paper formulas)
  FSDP full shard:         (4 + 4 + 8)Ψ/N
Frozen parameters hold weights only (in the dtype the model keeps them; sharded under ZeRO-3/FSDP).
EMA keeps an fp32 copy of the trainable weights on every process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from atlas.planning.hardware import ALLOCATOR_MARGIN, CUDA_CONTEXT_GIB, GIB
from atlas.planning.probe import ModelProbe

STRATEGIES = ("ddp", "zero1", "zero2", "zero3", "fsdp")


@dataclass
class MemoryBreakdown:
    """Bytes per GPU by what holds them."""

    weights: float
    gradients: float
    optimizer: float
    ema: float
    activations: float
    cuda_context: float
    allocator_margin: float

    @property
    def total(self) -> float:
        return sum(asdict(self).values())

    def to_dict(self) -> dict:
        data = {k: round(v / GIB, 3) for k, v in asdict(self).items()}
        data["total"] = round(self.total / GIB, 3)
        data["unit"] = "GiB"
        return data


def resolve_strategy(strategy: str, world_size: int, mixed_precision: str) -> str:
    """Config words (auto/ddp/fsdp/deepspeed) → a formula key; `deepspeed` means ZeRO-2 as RDT ships it."""
    strategy = strategy.lower().replace("-", "").replace("_", "")
    if strategy in ("auto", "", "none"):
        return "ddp"
    if strategy == "deepspeed":
        return "zero2"
    if strategy in ("zero0",):
        return "ddp"
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r} unknown; valid: auto, deepspeed, {', '.join(STRATEGIES)}")
    return strategy


def state_bytes(probe: ModelProbe, strategy: str, world_size: int, mixed_precision: str, ema: bool) -> dict[str, float]:
    """Weights, gradients, optimizer and EMA bytes on one GPU (see the module docstring for the formulas)."""
    n = max(1, world_size)
    psi = probe.params.trainable
    frozen = probe.params.frozen_bytes
    half = mixed_precision in ("bf16", "fp16")
    if strategy.startswith("zero"):
        w, g, o = (2, 2, 12) if half else (4, 4, 8)
        frozen_w = frozen * (2 / 4 if half else 1.0)
        stage = int(strategy[-1])
        weights = w * psi / (n if stage >= 3 else 1) + frozen_w / (n if stage >= 3 else 1)
        grads = g * psi / (n if stage >= 2 else 1)
        optim = o * psi / (n if stage >= 1 else 1)
    elif strategy == "fsdp":
        weights, grads, optim = (4 * psi + frozen) / n, 4 * psi / n, 8 * psi / n
    else:
        weights, grads, optim = 4 * psi + frozen, 4 * psi, 8 * psi
    return {"weights": weights, "gradients": grads, "optimizer": optim, "ema": 4 * psi if ema else 0.0}


def breakdown(probe: ModelProbe, micro_batch: int, strategy: str, world_size: int, mixed_precision: str,
              ema: bool, checkpointing: bool, efficient_attention: bool) -> MemoryBreakdown:
    """Everything one GPU holds at the peak of a training step for this micro-batch."""
    state = state_bytes(probe, strategy, world_size, mixed_precision, ema)
    activations = probe.activation(checkpointing, efficient_attention).predict(micro_batch)
    dynamic = sum(state.values()) + activations
    return MemoryBreakdown(**state, activations=activations, cuda_context=CUDA_CONTEXT_GIB * GIB,
                           allocator_margin=ALLOCATOR_MARGIN * dynamic)


def max_micro_batch(probe: ModelProbe, budget_bytes: float, strategy: str, world_size: int, mixed_precision: str,
                    ema: bool, checkpointing: bool, efficient_attention: bool) -> int:
    """Largest micro-batch whose breakdown total stays within `budget_bytes` (0 when even 1 does not fit)."""
    state = sum(state_bytes(probe, strategy, world_size, mixed_precision, ema).values())
    fit = probe.activation(checkpointing, efficient_attention)
    room = (budget_bytes - CUDA_CONTEXT_GIB * GIB) / (1 + ALLOCATOR_MARGIN) - state - fit.fixed_bytes
    if fit.per_sample_bytes <= 0:
        return 1 << 20 if room >= 0 else 0
    return max(0, int(room // fit.per_sample_bytes))
