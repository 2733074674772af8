"""GPU table and the stated constants every estimate rests on.

Figures are vendor datasheet peaks (dense, no sparsity). `link_gbps` is the one-direction bandwidth a
ring all-reduce sees per GPU: half the NVLink bidirectional total, or ~25 GB/s measured for PCIe 4.0 x16.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from atlas.units import GB, GIB  # noqa: F401 - re-exported for the planner's callers

# Stated constants (see DESIGN: estimates must say what they assume).
CUDA_CONTEXT_GIB = 1.0  # CUDA context + cuBLAS/cuDNN workspaces + NCCL buffers per process
ALLOCATOR_MARGIN = 0.10  # caching-allocator fragmentation and backward transients, fraction of dynamic memory
# Model-FLOPs utilization for step-time estimates: what the real loop reached on an H200 (bf16, data loading
# included; benchmarks/RESULTS.md, "CUDA checks").
DEFAULT_MFU = 0.25
MEASURED_CPU_MFU_NOTE = "--measure replaces the MFU with the one timed on this device"


@dataclass(frozen=True)
class GPUSpec:
    name: str
    memory_gb: float  # GiB as sold (24, 40, 80, 141 ...)
    bf16_tflops: float  # dense tensor-core peak (fp16 for V100, which has no bf16)
    link: str  # NVLink or PCIe
    link_gbps: float  # one-direction GB/s per GPU for collectives

    def to_dict(self) -> dict:
        return asdict(self)


GPUS: dict[str, GPUSpec] = {
    g.name: g
    for g in (
        GPUSpec("4090", 24, 165.2, "PCIe 4.0 x16", 25.0),
        GPUSpec("V100", 32, 125.0, "NVLink 2 (300 GB/s bidir)", 150.0),
        GPUSpec("A100-40", 40, 312.0, "NVLink 3 (600 GB/s bidir)", 300.0),
        GPUSpec("A100-80", 80, 312.0, "NVLink 3 (600 GB/s bidir)", 300.0),
        GPUSpec("A800", 80, 312.0, "NVLink 3 (400 GB/s bidir)", 200.0),
        GPUSpec("L40S", 48, 362.0, "PCIe 4.0 x16", 25.0),
        GPUSpec("H100", 80, 989.0, "NVLink 4 (900 GB/s bidir)", 450.0),
        GPUSpec("H200", 141, 989.0, "NVLink 4 (900 GB/s bidir)", 450.0),
    )
}

_ALIASES = {"RTX4090": "4090", "A100": "A100-80", "A100-80GB": "A100-80", "A100-40GB": "A100-40", "H100-80": "H100"}


def find_gpu(name: str) -> GPUSpec:
    """Look a GPU up by table name, case-insensitively, with a few common spellings."""
    key = name.strip().upper().replace("_", "-").replace(" ", "")
    key = _ALIASES.get(key, key)
    for gpu_name, spec in GPUS.items():
        if gpu_name.upper() == key:
            return spec
    raise KeyError(f"GPU {name!r} is not in the table; known: {', '.join(GPUS)}")


def gpu_from_device_name(device_name: str) -> GPUSpec | None:
    """The table's GPU for a CUDA device name ("NVIDIA H200", "NVIDIA A100-SXM4-40GB", "NVIDIA GeForce RTX
    4090"), so a rate measured on this device is read against this device's peak; None when not in the table."""
    name = device_name.upper().replace(" ", "")
    if "A100" in name:
        return GPUS["A100-40" if "40GB" in name else "A100-80"]
    for key in ("H200", "H100", "A800", "L40S", "4090", "V100"):
        if key in name:
            return GPUS[key]
    return None


def gpu_for_memory(memory_gb: float) -> GPUSpec:
    """A representative GPU of a memory size (for speed figures when only --gpu-memory is given)."""
    if memory_gb <= 24:
        base = GPUS["4090"]
    elif memory_gb <= 48:
        base = GPUS["L40S"]
    elif memory_gb <= 80:
        base = GPUS["A100-80"]
    else:
        base = GPUS["H200"]
    if base.memory_gb == memory_gb:
        return base
    return GPUSpec(f"{memory_gb:g} GB ({base.name}-class speed)", memory_gb, base.bf16_tflops, base.link, base.link_gbps)
