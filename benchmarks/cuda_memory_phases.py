"""Where a training step's CUDA memory goes, phase by phase, against the planner's itemized prediction.

`cuda_checks.py` compares one number (the run's peak) with the plan; this splits a bf16 step of the same
config (the model `atlas plan` probes, fused AdamW as the loop builds it) into: weights on the GPU, the
forward (peak, and what stays for backward), the backward (peak, gradients left), the first optimizer step
(Adam moments appear) and a second, steady-state step. Each phase's allocated bytes after it and its peak,
in GiB, beside the planner's weights / activations / gradients / optimizer.

`python benchmarks/cuda_memory_phases.py --cases rdt-1b,atlas-base [--out DIR]` (needs a CUDA GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cuda_checks import CASES, COMMON, GIB, SMOKE, predict  # noqa: E402

from atlas.config import load_config  # noqa: E402
from atlas.engine.optim import adamw_kernel  # noqa: E402
from atlas.planning.probe import build_model, dataset_meta, make_batch  # noqa: E402

CUDA = torch.cuda.is_available()


def allocated() -> int:
    return torch.cuda.memory_allocated() if CUDA else 0


def peak() -> int:
    return torch.cuda.max_memory_allocated() if CUDA else 0


def reset_peak() -> None:
    if CUDA:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def phases(overrides: list[str]) -> dict:
    """Allocated and peak bytes of each phase of two training steps (zeros off CUDA: `--smoke` checks the code)."""
    cfg = load_config(None, overrides)
    micro = cfg.data.batch_size
    device = torch.device("cuda" if CUDA else "cpu")
    meta = dataset_meta(cfg)
    reset_peak()
    base = allocated()
    model = build_model(cfg, meta, False, False).to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, **adamw_kernel(params))
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in make_batch(meta, cfg, micro).items()}
    record: dict = {"micro_batch": micro}

    def mark(name: str) -> None:
        record[name] = {"after_gib": (allocated() - base) / GIB, "peak_gib": (peak() - base) / GIB}
        reset_peak()

    mark("weights_and_batch")
    for step in (1, 2):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(batch)["loss_sum"]
        mark(f"step{step}_forward")
        loss.backward()
        del loss
        mark(f"step{step}_backward")
        optimizer.step()
        mark(f"step{step}_optimizer")
        optimizer.zero_grad(set_to_none=True)
        mark(f"step{step}_zero_grad")
    record["overall_peak_gib"] = max(v["peak_gib"] for v in record.values() if isinstance(v, dict))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="rdt-1b,atlas-base,atlas-small")
    parser.add_argument("--out", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on a CPU: checks the code, no figures")
    args = parser.parse_args()
    results = {}
    for name in args.cases.split(","):
        overrides = COMMON + CASES[name] + (SMOKE if args.smoke else [])
        micro = load_config(None, overrides).data.batch_size
        plan = predict(overrides, micro)
        results[name] = {"measured": phases(overrides), "planned": plan["breakdown"]}
        measured, planned = results[name]["measured"], plan["breakdown"]
        print(f"\n{name} (micro-batch {micro}); planned GiB: " + ", ".join(
            f"{k} {planned[k]:.2f}" for k in ("weights", "gradients", "optimizer", "activations")))
        print("| phase | allocated after | peak during |")
        print("|---|---|---|")
        for phase, v in measured.items():
            if isinstance(v, dict):
                print(f"| {phase} | {v['after_gib']:.2f} | {v['peak_gib']:.2f} |")
        print(f"overall peak {measured['overall_peak_gib']:.2f} GiB; planned tensors "
              f"{sum(planned[k] for k in ('weights', 'gradients', 'optimizer', 'ema', 'activations')):.2f} GiB")
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
