"""`training.compile`: torch.compile of the per-block modules, in place, not of the whole loop.

Blocks are compiled with `nn.Module.compile()`, which keeps parameter names (state dicts, checkpoints and
optimizer groups are unchanged) and composes with gradient checkpointing (the block is what the
checkpoint recomputes), DDP, FSDP2 (each block is an FSDP unit) and accumulation. torchtitan compiles
per transformer block for the same reasons: small graphs, one compile reused by every block of a shape.

Compiled targets: every fusion-transformer block, the vision backbone when it trains, the readout
denoiser. torch.nn's own containers (an MLP made of nn.Sequential) are skipped by dynamo and not listed.

CUDA-graph modes (reduce-overhead, max-autotune) reuse output buffers between replays, which breaks when
the next micro-batch runs before the previous one's backward (gradient accumulation; LeRobot #3980) or
when the batch shape changes (OOM back-off): the run plan refuses those combinations.
"""

from __future__ import annotations

import logging

from torch import nn

CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def compile_targets(policy: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of what gets compiled, in the policy's module order."""
    targets: list[tuple[str, nn.Module]] = []
    fusion = getattr(policy, "fusion", None)
    blocks = getattr(fusion, "blocks", None)
    if isinstance(blocks, nn.ModuleList):
        targets += [(f"fusion.blocks.{i}", block) for i, block in enumerate(blocks)]
    vision = getattr(policy, "vision", None)
    if vision is not None and any(p.requires_grad for p in vision.parameters()):
        targets.append(("vision", vision))
    readout = getattr(getattr(policy, "action_head", None), "readout", None)
    if readout is not None:
        targets.append(("action_head.readout", readout))
    return targets


def compile_policy(policy: nn.Module, mode: str, backend: str, log: logging.Logger) -> list[str]:
    """Compile the targets in place (compilation itself happens at their first call); their names."""
    targets = compile_targets(policy)
    options = {"backend": backend} if mode == "default" else {"backend": backend, "mode": mode}
    for _, module in targets:
        module.compile(**options)
    names = [name for name, _ in targets]
    if names:
        log.info(f"torch.compile ({backend}, mode {mode}): {len(names)} module(s): {', '.join(_short(names))}")
    else:
        log.warning("training.compile=true: this policy has no per-block modules to compile; running eager")
    return names


def graphs_compiled() -> int:
    """Graphs dynamo has compiled in this process so far (grows when a step triggers a (re)compile)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover - torch without dynamo
        return 0
    return int(counters["stats"]["unique_graphs"])


def _short(names: list[str]) -> list[str]:
    blocks = [n for n in names if n.startswith("fusion.blocks.")]
    rest = [n for n in names if not n.startswith("fusion.blocks.")]
    return ([f"fusion.blocks.0-{len(blocks) - 1}"] if blocks else []) + rest
