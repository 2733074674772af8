"""Does pretraining on MT10 help on Meta-World tasks outside MT10? Scratch vs full fine-tune vs LoRA.

1. Demos with `atlas collect metaworld`: MT10 (the pretraining set) and tasks outside MT10 with 10 demos each,
   state only (no camera: the whole benchmark has to fit ~20 minutes of a 2-core CPU; Meta-World's 39-d state
   holds the object and goal positions, see benchmarks/policy_baseline.py).
2. Pretrain the quickstart model (atlas/configs/train_config.yaml: atlas-small, frozen MiniLM instructions,
   fusion transformer; state only, readout denoiser at batch 256 as policy_baseline.py's STATE_RECIPE) on MT10.
3. On the new tasks, with the same steps, seeds and evaluation episodes: from scratch, a full fine-tune of the
   MT10 checkpoint (`--init-from`), and LoRA on the fusion transformer (`model.lora`, the action head trained in
   full). Closed-loop success per task every `--eval-every` steps (the loop's own evaluation: EMA weights, the
   same episode seeds for every run at a given step).
4. `atlas eval` on the LoRA run and on its `atlas export --merge-lora` copy (the CLI path of a fine-tuned run).

    python benchmarks/finetune.py                  # ~15-20 min on the 2-core VM (figures in RESULTS.md)
    python benchmarks/finetune.py --quick          # CI: a few demos, a few steps, one episode

Last line: mean final success of each variant and the steps each needed to reach scratch's final success.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's atlas, whatever is installed
os.environ.setdefault("MUJOCO_GL", "egl")
CONFIG = REPO / "atlas" / "configs" / "train_config.yaml"
NEW_TASKS = ["door-close-v3", "button-press-v3", "handle-press-v3", "plate-slide-v3"]  # none of them in MT10
STATE_ONLY = ["data.image_keys=[]", "model.head.denoiser=mlp", "model.head.noise_samples=4", "data.batch_size=256",
              "logging.progress_bar=false", "logging.tensorboard=false", "training.val_interval=0"]
VARIANTS = {
    "scratch": [],
    "full": ["model.pretrained={pretrain}"],
    "lora": ["model.pretrained={pretrain}", "model.lora.rank=16", "model.lora.alpha=32",
             "model.lora.trainable_modules=[action_head]"],
}


def atlas(*args: str) -> None:
    """The real CLI (atlas.cli.main), in this process: the start-up of a fresh interpreter and of MiniLM's
    imports is paid once, not per run. Each training run's log is its own train.log."""
    from atlas.cli import main as cli

    code = cli(list(args))
    if code != 0:
        raise SystemExit(f"atlas {' '.join(args[:3])} failed with exit code {code}")


def collect(out: Path, tasks: str, episodes: int) -> None:
    if not out.is_file():
        atlas("collect", "metaworld", "--tasks", tasks, "--episodes", str(episodes), "--out", str(out),
              "--cameras", "", "--seed", "0")


def success_curve(run: Path) -> dict[int, dict[str, float]]:
    """step -> {task: success, 'mean': success} from the run's metrics.jsonl evaluation lines."""
    curve: dict[int, dict[str, float]] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "success_rate" in row:
            tasks = {k.split("/", 1)[1]: v for k, v in row.items() if k.startswith("success_rate/")}
            curve[row["step"]] = {**tasks, "mean": row["success_rate"]}
    return curve


def steps_to_reach(curve: dict[int, dict[str, float]], target: float) -> int | None:
    return next((step for step in sorted(curve) if curve[step]["mean"] >= target - 1e-9), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="demos and runs, reused when present (default "
                        "benchmarks/.finetune; --quick: a fresh temporary folder)")
    parser.add_argument("--mt10-demos", type=int, default=20)
    parser.add_argument("--demos", type=int, default=10, help="demos per new task")
    parser.add_argument("--pretrain-steps", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=600, help="fine-tuning steps (every variant)")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--episodes", type=int, default=8, help="evaluation episodes per task")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    mt10, new_tasks = "mt10", NEW_TASKS
    explicit_work = args.work is not None
    if args.quick:
        args.work = args.work or tempfile.mkdtemp(prefix="atlas-finetune-quick-")
        mt10, new_tasks = "reach-v3,push-v3", NEW_TASKS[:2]
        args.mt10_demos, args.demos, args.pretrain_steps, args.steps, args.eval_every = 2, 2, 6, 4, 2
        args.episodes, args.seeds = 1, "0"
    work = Path(args.work or REPO / "benchmarks" / ".finetune")
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    mt10_data, new_data = work / "mt10.hdf5", work / f"new-{args.demos}.hdf5"
    collect(mt10_data, mt10, args.mt10_demos)
    collect(new_data, ",".join(new_tasks), args.demos)
    max_eval_steps = 30 if args.quick else 200

    pretrain = work / f"pretrain-{args.pretrain_steps}"
    if not (pretrain / "checkpoints" / "latest").exists():
        atlas("train", "--config", str(CONFIG), "--output-dir", str(pretrain), *STATE_ONLY,
              f"data.path={mt10_data}", f"training.max_steps={args.pretrain_steps}", "eval.every_n_steps=0",
              f"training.warmup_steps={max(1, args.pretrain_steps // 6)}",
              f"training.checkpoint_interval={args.pretrain_steps}")
    pretrain_s = time.perf_counter() - start

    results: dict[str, dict[int, dict]] = {v: {} for v in VARIANTS}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for variant, extra in VARIANTS.items():
            run = work / f"{variant}-seed{seed}-{args.steps}"
            if not (run / "checkpoints" / "latest").exists():
                overrides = [o.format(pretrain=pretrain) for o in extra]
                atlas("train", "--config", str(CONFIG), "--output-dir", str(run), *STATE_ONLY, *overrides,
                      f"data.path={new_data}", f"training.max_steps={args.steps}", f"training.seed={seed}",
                      f"training.warmup_steps={max(1, args.steps // 12)}", f"eval.every_n_steps={args.eval_every}",
                      f"eval.episodes={args.episodes}", f"eval.max_steps={max_eval_steps}",
                      f"training.checkpoint_interval={args.steps}")
            results[variant][seed] = success_curve(run)

    # the CLI on a fine-tuned run: atlas eval of the LoRA run and of its merged export, same episodes
    lora_run = work / f"lora-seed{args.seeds.split(',')[0]}-{args.steps}"
    merged = work / f"lora-merged-{args.steps}"
    if not merged.exists():
        atlas("export", "--merge-lora", str(lora_run), str(merged))
    evals = {}
    for name, path in (("lora (adapters over the base)", lora_run), ("lora merged (atlas export)", merged)):
        out = work / f"eval-{path.name}.json"
        atlas("eval", "--checkpoint", str(path), "--tasks", new_tasks[0], "--episodes", str(args.episodes),
              "--max-steps", str(max_eval_steps), "--exec-horizon", "4", "--out", str(out))
        evals[name] = json.loads(out.read_text())["success_rate"]

    seeds = sorted(results["scratch"])
    steps = sorted(results["scratch"][seeds[0]])

    def mean_at(variant: str, step: int, key: str = "mean") -> float:
        return sum(results[variant][s][step][key] for s in seeds) / len(seeds)

    print(f"fine-tuning on {', '.join(new_tasks)} ({args.demos} demos each), {args.steps} steps, seeds {seeds}, "
          f"{args.episodes} episodes per task per evaluation; pretrained {args.pretrain_steps} steps on {mt10} "
          f"({args.mt10_demos} demos per task, {pretrain_s:.0f} s)")
    print(f"{'task':<22}" + "".join(f"{v:>10}" for v in VARIANTS))
    for task in [*new_tasks, "mean"]:
        print(f"{task:<22}" + "".join(f"{mean_at(v, steps[-1], task):>10.0%}" for v in VARIANTS))
    print("mean success by step: " + "; ".join(
        f"{v} " + " ".join(f"{s}:{mean_at(v, s):.0%}" for s in steps) for v in VARIANTS))
    target = mean_at("scratch", steps[-1])
    reach = {}
    for v in VARIANTS:
        curve = {s: {"mean": mean_at(v, s)} for s in steps}
        reach[v] = steps_to_reach(curve, target)
    print("atlas eval on the LoRA run, " + new_tasks[0] + ": " + ", ".join(f"{k} {r:.0%}" for k, r in evals.items()))
    print(f"total {time.perf_counter() - start:.0f} s")
    print("finetune final success " + " ".join(f"{v} {mean_at(v, steps[-1]):.3f}" for v in VARIANTS)
          + f"; steps to scratch's final {target:.3f}: "
          + " ".join(f"{v} {reach[v] if reach[v] is not None else 'never'}" for v in VARIANTS))
    if args.quick and not explicit_work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
