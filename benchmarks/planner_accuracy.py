"""Planner accuracy against the memory a real forward takes: activation bytes the planner predicts (its fit
from fake-tensor probes at micro-batches 1 and 2) vs what the allocator holds after a real training
forward at larger micro-batches. Goal: within 15 %. Last line is the headline figure.

Measured, one fresh subprocess per case (so no case inherits another's heap):
- CPU (fp32: CPU bf16 autocast saves other dtypes than a GPU's, so a CPU bf16 figure would check nothing):
  torch's CPU allocator keeps no peak statistics, so the process's resident set is read from
  /proc/self/status. After a warm-up forward at micro-batch 1 (loads kernels and code pages) the high-water
  mark is reset (`echo 5 > /proc/self/clear_refs`), then a forward with autograd on runs and
  **measured = VmRSS after the forward - VmRSS before** (what stays alive for backward: saved tensors and the
  output); VmHWM - before (the peak inside the forward, temporaries included) is printed beside it. glibc's
  mmap threshold is pinned (MALLOC_MMAP_THRESHOLD_=65536) so freed large blocks leave the resident set.
- CUDA (when a GPU is present, `--device cuda`): bf16 autocast as the loop runs it, measured =
  torch.cuda.memory_allocated after the forward - before; the peak from max_memory_allocated.
The saved-tensor count of the same forward (the old figure: the planner's own counter on a real forward,
self-consistency rather than accuracy) is printed beside it.

Signed error = predicted/measured - 1: **negative is under-prediction, the unsafe side** (a plan that fits on
paper and runs out of memory). Any failing case (a probe that raises, a child that dies, a NaN or zero
measurement) makes the script exit non-zero naming the case.

    python benchmarks/planner_accuracy.py [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# name -> (overrides, micro-batches); sizes chosen for tens to hundreds of MiB of activations
CASES = {
    "mlp-1024": (["model.preset=mlp", "model.hidden_dim=1024", "model.num_layers=4"], [2048, 8192]),
    "atlas-tiny": (["model.preset=atlas-tiny", "data.image_size=32"], [128, 512]),
    "atlas-small": (["model.preset=atlas-small", "data.image_size=64"], [64, 256]),
}
QUICK = {
    "mlp-1024": (["model.preset=mlp", "model.hidden_dim=1024", "model.num_layers=4"], [2048]),
    "atlas-tiny": (["model.preset=atlas-tiny", "data.image_size=32"], [256]),
}
GOAL = 0.15


def status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(spec: dict) -> dict:
    """One case in this (fresh) process: predicted activation bytes and the measured ones."""
    import torch

    from atlas.config.loader import load_config
    from atlas.engine.precision import autocast_factory
    from atlas.planning.probe import build_model, dataset_meta, make_batch, probe_model

    torch.set_num_threads(1)
    device = torch.device(spec["device"])
    precision = "bf16" if device.type == "cuda" else "no"
    cfg = load_config(None, spec["overrides"] + [f"training.mixed_precision={precision}"])
    predicted = probe_model(cfg).activation(False, False).predict(spec["micro"])
    meta = dataset_meta(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, meta, False, False).to(device)
    autocast = autocast_factory(device, precision)

    def to_device(batch: dict) -> dict:
        return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}

    with torch.no_grad(), autocast():
        model(to_device(make_batch(meta, cfg, 1)))  # warm-up: kernels, code pages, lazy buffers
    batch = to_device(make_batch(meta, cfg, spec["micro"]))
    held = {p.untyped_storage()._cdata for p in model.parameters()} | {b.untyped_storage()._cdata for b in model.buffers()}
    saved: dict[int, int] = {}

    def pack(t):
        if t.untyped_storage()._cdata not in held:
            saved[t.untyped_storage()._cdata] = t.untyped_storage().nbytes()
        return t

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = status_bytes("VmRSS")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast():
        out = model(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
        after, peak = torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()
    else:
        after, peak = status_bytes("VmRSS"), status_bytes("VmHWM")
    del out
    return {"predicted": predicted, "measured": after - before, "peak": peak - before, "saved": sum(saved.values())}


def run_case(name: str, overrides: list[str], micro: int, device: str) -> dict:
    """The case in a fresh interpreter; raises naming the case when it fails in any way."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": str(REPO)}
    spec = json.dumps({"overrides": overrides, "micro": micro, "device": device})
    proc = subprocess.run([sys.executable, __file__, "--child", spec], capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"case {name} micro={micro}: exit {proc.returncode}: {proc.stderr.strip()[-1500:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not (result["measured"] > 0 and math.isfinite(result["predicted"] / result["measured"])):
        raise RuntimeError(f"case {name} micro={micro}: measured {result['measured']} bytes, predicted {result['predicted']}: no ratio")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer presets and micro-batches (CI)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    cases = QUICK if args.quick else CASES
    mib = 2**20
    print(f"# measured: {'cuda memory_allocated, bf16' if args.device == 'cuda' else 'RSS delta (VmRSS), fp32'}; "
          "signed error = predicted/measured - 1 (negative: under-predicted, the unsafe side)")
    errors, failures = [], []
    for name, (overrides, micros) in cases.items():
        for micro in micros:
            try:
                r = run_case(name, overrides, micro, args.device)
            except Exception as err:  # noqa: BLE001 - every failure is reported, then the script fails
                failures.append(f"{name} micro={micro}: {err}")
                print(f"{name:12s} micro={micro:5d} FAILED: {err}", flush=True)
                continue
            error = r["predicted"] / r["measured"] - 1
            errors.append(error)
            print(f"{name:12s} micro={micro:5d} predicted={r['predicted'] / mib:9.1f} MiB measured={r['measured'] / mib:9.1f} MiB "
                  f"(peak in forward {r['peak'] / mib:9.1f}, saved-tensor count {r['saved'] / mib:9.1f}) signed error {error:+.1%} "
                  f"({(r['predicted'] - r['measured']) / mib:+.1f} MiB)",
                  flush=True)
    if failures:
        raise SystemExit("planner_accuracy: failed case(s): " + "; ".join(failures))
    worst = max(errors, key=abs)
    under = min(errors)
    print(f"planner accuracy: worst |predicted/measured - 1| = {abs(worst):.1%} (signed {worst:+.1%}; most under-predicted "
          f"{under:+.1%}{' (unsafe side)' if under < 0 else ''}, most over-predicted {max(errors):+.1%}; goal {GOAL:.0%}; "
          f"{'RSS' if args.device == 'cpu' else 'cuda allocator'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
