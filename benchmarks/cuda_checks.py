"""CUDA checks for one lent GPU, in one call: what the CPU suite cannot show.

1. ceilings: a large bf16 matrix product (TFLOP/s), the rate MFU is read against besides the datasheet's;
2. the real training loop (`atlas train`, a subprocess per run) in bf16 on synthetic episodes shaped like the
   real inputs, for atlas-small, atlas-base and rdt-1b: loss falls, samples/s, MFU, and the measured peak
   (`torch.cuda.max_memory_allocated` / `max_memory_reserved`) against what the planner (`atlas plan`) predicts
   for the same micro-batch on this GPU;
3. out-of-memory back-off for real: `max_memory_usage` set so the configured micro-batch cannot fit, with
   `dynamic_batch_size` on; the run must halve, keep the effective batch and finish under the cap;
4. resume on CUDA: a run stopped at step 20 and resumed to 40 against one straight run (loss per step, weights);
5. `auto_micro_batch` under the OOM case's cap: the planner's choice is applied and must fit (`--cases auto`);
6. `atlas plan --measure`: real steps on the device calibrate the MFU of the time estimates (`--cases measure`);
7. `training.compile` (`--cases compile`): eager and compiled runs of atlas-small and atlas-base side by side,
   50 steps each: samples/s, the loop's own `mfu`, compile seconds, and the loss curves' largest difference;
8. `training.async_checkpoint` (`--cases async`): rdt-1b's checkpoint cost to the loop (`time/checkpoint_ms`),
   synchronous beside asynchronous.

`python benchmarks/cuda_checks.py --out DIR` prints one table last and writes `cuda_checks.json` and each run's
train.log under DIR. `--smoke` shrinks every case to run on a CPU in a minute (the pipeline, not the figures).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from atlas.config import load_config  # noqa: E402
from atlas.planning.hardware import GIB  # noqa: E402
from atlas.planning.planner import PlanRequest, make_plan  # noqa: E402
from atlas.planning.probe import probe_model  # noqa: E402

DATASHEET_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}
COMMON = ["data.format=synthetic", "model.language.name=task_embedding", "training.mixed_precision=bf16",
          "training.val_interval=0", "training.lr_scheduler=cosine", "training.warmup_steps=5",
          "logging.progress_bar=false", "logging.tensorboard=false", "data_loading.num_workers=4",
          "data_loading.preload_data=true"]
CASES = {
    "atlas-small": ["model.preset=atlas-small", "data.image_size=64", "data.num_cameras=1", "data.state_dim=39",
                    "data.action_dim=4", "data.num_episodes=40", "data.episode_length=100", "data.batch_size=256",
                    "training.max_steps=150", "training.log_interval=10", "training.checkpoint_interval=1000",
                    "training.ema.enabled=true", "training.learning_rate=3e-4"],
    "atlas-base": ["model.preset=atlas-base", "data.image_size=224", "data.num_cameras=2", "data.state_dim=14",
                   "data.action_dim=14", "data.num_episodes=12", "data.episode_length=60", "data.batch_size=64",
                   "training.max_steps=60", "training.log_interval=5", "training.checkpoint_interval=1000",
                   "training.ema.enabled=true", "training.learning_rate=1e-4"],
    "rdt-1b": ["model.preset=rdt-1b", "data.image_size=384", "data.num_cameras=3", "data.obs_horizon=2",
               "data.state_dim=128", "data.action_dim=128", "data.num_episodes=6", "data.episode_length=80",
               "data.batch_size=16", "training.max_steps=24", "training.log_interval=4",
               "training.checkpoint_interval=1000", "training.ema.enabled=false", "training.learning_rate=1e-4"],
}
SMOKE = ["data.image_size=32", "data.num_episodes=4", "data.episode_length=12", "data.batch_size=4",
         "training.max_steps=6", "training.log_interval=2", "model.fusion.depth=1", "model.fusion.width=64",
         "model.fusion.num_heads=2", "model.vision.name=resnet_small", "model.vision.width=8",
         "data.num_cameras=1", "data_loading.num_workers=0"]


def matmul_tflops(n: int = 8192, reps: int = 10) -> float | None:
    """bf16 n×n×n products on random data, mean of `reps` after 3 warm-ups, timed with CUDA events."""
    if not torch.cuda.is_available():
        return None
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1e3 / reps
    del a, b
    torch.cuda.empty_cache()
    return 2 * n**3 / seconds / 1e12


def gpu_gib() -> float:
    return torch.cuda.get_device_properties(0).total_memory / GIB if torch.cuda.is_available() else 80.0


def micro_batch(overrides: list[str]) -> int:
    return load_config(None, overrides).data.batch_size


@functools.cache
def _probe(overrides: tuple[str, ...]):
    """One probe per config: it fits activations per sample, so every micro-batch of a config shares it."""
    return probe_model(load_config(None, list(overrides)))


def predict(overrides: list[str], micro: int) -> dict:
    """The planner's breakdown for this config at this micro-batch on this GPU (as `atlas plan` would print)."""
    cfg = load_config(None, [*overrides, f"data.batch_size={micro}"])
    started = time.perf_counter()
    plan = make_plan(cfg, 1, gpu_gib(), request=PlanRequest(micro_batch_size=micro, probe=_probe(tuple(overrides))))
    mem = plan.memory
    tensors = mem.weights + mem.gradients + mem.optimizer + mem.ema + mem.activations
    return {"micro_batch": micro, "tensors_gib": tensors / GIB, "total_gib": mem.total / GIB,
            "context_gib": mem.cuda_context / GIB, "breakdown": mem.to_dict(),
            "train_flops_per_sample": plan.probe.train_flops_per_sample, "max_micro_batch": plan.max_micro_batch,
            "plan_seconds": time.perf_counter() - started}


def train(run_dir: Path, overrides: list[str], env: dict | None = None, resume: str | None = None,
          timeout: float = 240) -> dict:
    """`atlas train` in a subprocess (its own CUDA context, so peaks are per run); the `done:` summary."""
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)
    config = run_dir.parent / f"{run_dir.name}.yaml"
    config.write_text("{}\n")
    cmd = [sys.executable, "-m", "atlas.cli", "train", "--config", str(config), "--output-dir", str(run_dir)]
    if resume:
        cmd += ["--resume", resume]
    started = time.perf_counter()
    proc = subprocess.run(cmd + overrides, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    wall = time.perf_counter() - started
    (run_dir.parent / f"{run_dir.name}.stderr").write_text(proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{run_dir.name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    done = [line for line in proc.stderr.splitlines() if "done: {" in line]
    summary = json.loads(done[-1].split("done: ", 1)[1])
    summary["wall_s"] = wall
    summary["log_lines"] = [line for line in proc.stderr.splitlines()
                            if "OOM" in line or "planner" in line or "expect out-of-memory" in line]
    return summary


def metrics(run_dir: Path) -> list[dict]:
    from atlas.engine.metrics import metrics_records

    return metrics_records(run_dir)


def loop_case(name: str, overrides: list[str], out: Path, peak_tflops: float) -> dict:
    """One bf16 run: loss, throughput, MFU, planner vs measured peak."""
    micro = micro_batch(overrides)
    pred = predict(overrides, micro)
    summary = train(out / name, overrides)
    rows = [r for r in metrics(out / name) if "loss" in r]
    sps = statistics.median(r["samples_per_s"] for r in rows[1:]) if len(rows) > 1 else rows[0]["samples_per_s"]
    rate = pred["train_flops_per_sample"] * sps / 1e12
    result = {"case": name, "micro_batch": micro, "first_loss": rows[0]["loss"], "last_loss": rows[-1]["loss"],
              "samples_per_s": sps, "model_tflops": rate, "wall_s": summary["wall_s"], "predicted": pred,
              "measured_allocated_gib": summary.get("gpu_peak_allocated_gib"),
              "measured_reserved_gib": summary.get("gpu_peak_reserved_gib")}
    if peak_tflops:
        result["mfu_vs_matmul"] = rate / peak_tflops
    datasheet = next((v for k, v in DATASHEET_BF16_TFLOPS.items() if k in device_name()), None)
    if datasheet:
        result["mfu_vs_datasheet"] = rate / datasheet
    if result["measured_allocated_gib"]:
        result["predicted_over_measured"] = pred["tensors_gib"] / result["measured_allocated_gib"]
        result["total_predicted_over_reserved_plus_context"] = pred["total_gib"] / (
            result["measured_reserved_gib"] + pred["context_gib"])
    return result


def oom_case(overrides: list[str], out: Path, smoke: bool) -> dict:
    """A micro-batch that cannot fit under max_memory_usage: the loop must back off and finish."""
    micro = micro_batch(overrides)
    fits = max(1, micro // 4)  # the cap fits a quarter: halving twice must land there
    pred_fit = predict(overrides, fits)
    pred_full = predict(overrides, micro)
    fraction = min(0.95, pred_fit["total_gib"] / gpu_gib())
    env = {}
    if smoke:  # no CUDA cap on a CPU: the injected OOM takes the same except-path
        env["ATLAS_INJECT_OOM_AT_STEP"] = "2"
    run = [*overrides, "memory_optimization.dynamic_batch_size=true", f"memory_optimization.max_memory_usage={fraction:.4f}",
           "training.max_steps=8", "training.log_interval=1"]
    summary = train(out / "oom", run, env=env)
    rows = [r for r in metrics(out / "oom") if "loss" in r]
    return {"case": "oom-backoff", "configured_micro_batch": micro, "cap_gib": fraction * gpu_gib(),
            "predicted_need_gib": pred_full["total_gib"], "predicted_fit_micro_batch": fits,
            "final_micro_batch": summary["micro_batch_size"], "final_accumulation": summary["gradient_accumulation_steps"],
            "effective_batch": summary["effective_batch_size"], "final_step": summary["final_step"],
            "losses_finite": all(math.isfinite(r["loss"]) for r in rows), "backoffs": summary["log_lines"],
            "measured_reserved_gib": summary.get("gpu_peak_reserved_gib")}


def auto_case(overrides: list[str], out: Path, smoke: bool) -> dict:
    """`auto_micro_batch` under the same cap as the OOM case: the planner's choice (micro-batch, checkpointing)
    is applied, and the run must fit without one back-off."""
    cap = predict(overrides, max(1, micro_batch(overrides) // 4))["total_gib"]
    fraction = min(0.95, cap / gpu_gib())
    run = [*overrides, "memory_optimization.auto_micro_batch=true", "memory_optimization.dynamic_batch_size=true",
           f"memory_optimization.max_memory_usage={fraction:.4f}", "training.max_steps=8", "training.log_interval=1"]
    summary = train(out / "auto", run)
    plan = json.loads((out / "auto" / "plan.json").read_text())["memory_plan"] or {}
    return {"case": "auto-micro-batch", "cap_gib": fraction * gpu_gib(), "chosen_micro_batch": plan.get("micro_batch_size"),
            "chosen_checkpointing": plan.get("gradient_checkpointing"), "planned_total_gib": plan.get("memory", {}).get("total"),
            "final_micro_batch": summary["micro_batch_size"], "effective_batch": summary["effective_batch_size"],
            "backoffs": [line for line in summary["log_lines"] if "OOM" in line],
            "measured_allocated_gib": summary.get("gpu_peak_allocated_gib"),
            "measured_reserved_gib": summary.get("gpu_peak_reserved_gib")}


def measure_case(overrides: list[str], out: Path) -> dict:
    """`atlas plan --measure`: time real steps on this device and calibrate the MFU the time estimates use."""
    config = out / "measure.yaml"
    config.write_text("{}\n")
    cmd = [sys.executable, "-m", "atlas.cli", "plan", "--config", str(config), "--measure", *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    (out / "measure.stdout").write_text(proc.stdout + proc.stderr)
    lines = [line.strip() for line in proc.stdout.splitlines() if "measured on" in line or "calibrated MFU" in line]
    if not lines:
        raise RuntimeError(f"atlas plan --measure printed no measurement (exit {proc.returncode}):\n{proc.stdout[-1500:]}"
                           f"{proc.stderr[-1500:]}")
    return {"case": "plan-measure", "exit": proc.returncode, "lines": lines}


def resume_case(overrides: list[str], out: Path) -> dict:
    """Stopped at step 20 and resumed to 40 against a straight run, and a second straight run against the
    first (the noise floor: bf16 kernels need not repeat bit for bit): per-step losses and final weights."""
    from safetensors.torch import load_file

    run = [*overrides, "training.max_steps=40", "training.log_interval=1", "training.checkpoint_interval=20"]
    train(out / "straight", run)
    train(out / "again", run)
    stopped = train(out / "cut", run, env={"ATLAS_STOP_AT_STEP": "20"})
    train(out / "cut", run, resume="auto")

    def losses(name: str) -> dict:
        return {r["step"]: r["loss"] for r in metrics(out / name) if "loss" in r}

    def weights(name: str) -> dict:
        return load_file(str(out / name / "checkpoints/latest/model.safetensors"))

    a, wa = losses("straight"), weights("straight")
    result = {"case": "resume", "stopped_at": stopped["final_step"]}
    for name in ("cut", "again"):
        b, wb = losses(name), weights(name)
        result[name] = {
            "max_abs_loss_diff_steps_21_40": max(abs(a[s] - b[s]) for s in a if s > 20),
            "max_abs_loss_diff_steps_1_20": max(abs(a[s] - b[s]) for s in a if s <= 20),
            "max_abs_weight_diff": max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa),
            "bitwise_equal": all(torch.equal(wa[k], wb[k]) for k in wa)}
    return result


def compile_case(name: str, overrides: list[str], out: Path) -> dict:
    """Eager then compiled, same seed and steps: throughput, MFU as the loop logs it, loss curves compared."""
    steps = ["training.max_steps=50", "training.log_interval=1", "training.checkpoint_interval=1000"]
    sides = {}
    for side, extra in (("eager", []), ("compiled", ["training.compile=true"])):
        summary = train(out / f"{name}-{side}", overrides + steps + extra, timeout=900)
        rows = [r for r in metrics(out / f"{name}-{side}") if "loss" in r]
        timed = [r for r in rows[5:] if "samples_per_s" in r] or rows
        sides[side] = {"samples_per_s": statistics.median(r["samples_per_s"] for r in timed),
                       "mfu": statistics.median(r.get("mfu", 0.0) for r in timed),
                       "data_wait_ms": statistics.median(r.get("time/data_wait_ms", 0.0) for r in timed),
                       "step_ms": statistics.median(r.get("time/step_ms", 0.0) for r in timed),
                       "compile_s": summary["time_s"].get("compile", 0.0), "losses": [r["loss"] for r in rows]}
    diff = max(abs(a - b) for a, b in zip(sides["eager"]["losses"], sides["compiled"]["losses"]))
    return {"case": name, "max_loss_difference": diff,
            "speedup": sides["compiled"]["samples_per_s"] / sides["eager"]["samples_per_s"],
            **{f"{side}_{k}": v for side, d in sides.items() for k, v in d.items() if k != "losses"}}


def async_case(overrides: list[str], out: Path) -> dict:
    """rdt-1b's checkpoint cost to the loop, synchronous and asynchronous (three saves each)."""
    steps = ["training.max_steps=12", "training.log_interval=4", "training.checkpoint_interval=4"]
    result = {}
    for side, extra in (("sync", []), ("async", ["training.async_checkpoint=true"])):
        summary = train(out / f"ckpt-{side}", overrides + steps + extra, timeout=900)
        result[f"{side}_checkpoint_s_per_save"] = summary["time_s"].get("checkpoint", 0.0) / 3
    return result


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def table(results: dict) -> str:
    lines = [f"device: {device_name()}, torch {torch.__version__}, GPU memory {gpu_gib():.1f} GiB",
             f"bf16 matmul 8192^3: {results.get('matmul_tflops') or 0:.0f} TFLOP/s", "",
             "| case | micro | loss first→last | samples/s | model TFLOP/s | MFU (matmul / datasheet) "
             "| peak alloc GiB | planned tensors GiB | planned/measured | planned total / (reserved+ctx) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["loop"]:
        if "error" in r:
            lines.append(f"| {r['case']} | error: {r['error'][:200]} |")
            continue
        lines.append(
            f"| {r['case']} | {r['micro_batch']} | {r['first_loss']:.3f}→{r['last_loss']:.3f} | {r['samples_per_s']:.0f} "
            f"| {r['model_tflops']:.1f} | {r.get('mfu_vs_matmul', 0):.2f} / {r.get('mfu_vs_datasheet', 0):.2f} "
            f"| {r['measured_allocated_gib'] or 0:.2f} | {r['predicted']['tensors_gib']:.2f} "
            f"| {r.get('predicted_over_measured', 0):.2f} | {r.get('total_predicted_over_reserved_plus_context', 0):.2f} |")
    for key in ("oom", "auto", "resume", "measure", "compile", "async"):
        lines += ["", f"{key}: {json.dumps(results.get(key), default=str)}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/cuda_checks")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, runs on a CPU (checks the script)")
    parser.add_argument("--cases", default="atlas-small,atlas-base,oom,rdt-1b,resume")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    wanted = args.cases.split(",")
    extra = SMOKE if args.smoke else []
    results: dict = {"device": device_name(), "torch": torch.__version__, "gpu_gib": gpu_gib(), "loop": []}
    results["matmul_tflops"] = matmul_tflops()

    def save() -> None:
        (out / "cuda_checks.json").write_text(json.dumps(results, indent=2, default=str))

    special = {"oom": lambda: oom_case(COMMON + CASES["atlas-base"] + extra, out, args.smoke),
               "resume": lambda: resume_case(COMMON + CASES["atlas-small"] + ["data.batch_size=64"] + extra, out),
               "auto": lambda: auto_case(COMMON + CASES["atlas-base"] + extra, out, args.smoke),
               "measure": lambda: measure_case(COMMON + CASES["rdt-1b"] + extra, out),
               "compile": lambda: [compile_case(n, COMMON + CASES[n] + extra, out) for n in ("atlas-small", "atlas-base")],
               "async": lambda: async_case(COMMON + CASES["rdt-1b"] + extra, out)}
    for name in wanted:  # in the order asked: the most telling first, in case the lease runs out
        started = time.perf_counter()
        try:
            if name in special:
                results[name] = special[name]()
            else:
                results["loop"].append(loop_case(name, COMMON + CASES[name] + extra, out, results["matmul_tflops"]))
        except Exception as err:  # noqa: BLE001 - one failed case must not lose the others' figures
            failure = {"case": name, "error": f"{err}\n{traceback.format_exc()[-1500:]}"}
            if name in special:
                results[name] = failure
            else:
                results["loop"].append(failure)
        print(f"[cuda_checks] {name}: {time.perf_counter() - started:.0f} s", flush=True)
        save()
    print(table(results))


if __name__ == "__main__":
    main()
