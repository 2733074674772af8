"""Step time from counted FLOPs, a GPU's peak and an assumed MFU, plus ring all-reduce of the gradients.

  compute  = samples per GPU per step × train FLOPs per sample / (peak × MFU)
  all-reduce = 2(N−1)/N × gradient bytes / link bandwidth   (once per optimizer step, not overlapped:
               an upper bound; DDP overlaps much of it with backward)
Gradient checkpointing adds one more forward of the trainable part (recompute).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from atlas.planning.hardware import GB, GPUSpec
from atlas.planning.probe import ModelProbe


@dataclass
class StepTime:
    gpus: int
    micro_batch_size: int
    gradient_accumulation_steps: int
    compute_s: float
    allreduce_s: float
    step_s: float
    speedup: float
    total_hours: float

    def to_dict(self) -> dict:
        return {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in asdict(self).items()}


def allreduce_seconds(gradient_bytes: float, world_size: int, link_gbps: float) -> float:
    """Ring all-reduce: each GPU sends and receives 2(N−1)/N of the buffer."""
    if world_size <= 1:
        return 0.0
    return 2 * (world_size - 1) / world_size * gradient_bytes / (link_gbps * GB)


def gradient_bytes(probe: ModelProbe, strategy: str, mixed_precision: str) -> float:
    """What crosses the wire: fp32 grads under DDP/FSDP, half-precision grads under ZeRO with bf16/fp16."""
    half = strategy.startswith("zero") and mixed_precision in ("bf16", "fp16")
    return probe.params.trainable * (2 if half else 4)


def flops_per_sample(probe: ModelProbe, checkpointing: bool) -> float:
    return probe.train_flops_per_sample + (probe.forward_flops_per_sample if checkpointing else 0.0)


def step_time(probe: ModelProbe, gpu: GPUSpec, mfu: float, samples_per_gpu: int, world_size: int,
              strategy: str, checkpointing: bool) -> tuple[float, float]:
    """(compute seconds, all-reduce seconds) of one optimizer step."""
    compute = samples_per_gpu * flops_per_sample(probe, checkpointing) / (gpu.bf16_tflops * 1e12 * mfu)
    comm = allreduce_seconds(gradient_bytes(probe, strategy, probe.mixed_precision), world_size, gpu.link_gbps)
    return compute, comm


GPU_COUNTS = (1, 2, 4, 8)  # the rows of `atlas plan`'s scaling table


def scaling_table(probe: ModelProbe, gpu: GPUSpec, mfu: float, effective_batch: int, micro_batch: int,
                  max_steps: int, strategy: str, checkpointing: bool) -> list[StepTime]:
    """Step time, speed-up over 1 GPU and total hours for `max_steps` on GPU_COUNTS GPUs, at a fixed effective
    batch."""
    rows: list[StepTime] = []
    base = None
    for n in GPU_COUNTS:
        per_gpu = -(-effective_batch // n)
        micro = min(micro_batch, per_gpu)
        accumulation = -(-per_gpu // micro)
        compute, comm = step_time(probe, gpu, mfu, per_gpu, n, strategy, checkpointing)
        step = compute + comm
        base = base or step
        rows.append(StepTime(n, micro, accumulation, compute, comm, step, base / step, step * max_steps / 3600))
    return rows
