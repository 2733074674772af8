"""Where the quickstart's run-to-run spread comes from: each phase run twice with the same seeds, one thing changed.

The quickstart (`bash quickstart.sh`) is collect -> train -> evaluate. Its mean moves from run to run on
the same config and seeds (README). This script takes the three candidate sources one at a time, on a
small version of the quickstart (its config, its camera, a few tasks), and reports whether the two runs
of each pair are identical:

1. collection: `atlas collect metaworld` twice with seed 0, with 1 and with 2 workers: every dataset of
   the two HDF5 files compared byte for byte (SHA-256 of the arrays);
2. training: `atlas train` on the same file, same training seed, with torch's intra-op threads 1 vs 1
   (a repeat) and 1 vs 2: per-step loss, and the final weights' largest difference;
3. evaluation: `atlas eval` of one checkpoint twice, with 1 and with 2 workers: per-episode outcomes.

    python benchmarks/quickstart_determinism.py [--tasks reach-v3,peg-insert-side-v3] [--episodes 3] [--steps 60]

Every subprocess has a timeout. The figures (what is deterministic, what is not, and by how much) go to
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "atlas/configs/train_config.yaml"


def atlas(args: list[str], threads: int = 1, timeout: float = 900) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "MUJOCO_GL": "egl",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "atlas.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"atlas {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def dataset_hashes(path: Path) -> dict[str, str]:
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = hashlib.sha256(obj[()].tobytes()).hexdigest()
        f.visititems(visit)
    return out


def compare_collections(a: Path, b: Path) -> str:
    ha, hb = dataset_hashes(a), dataset_hashes(b)
    if ha.keys() != hb.keys():
        return f"different datasets ({len(ha.keys() ^ hb.keys())} only in one)"
    differ = sorted(k for k in ha if ha[k] != hb[k])
    return "identical" if not differ else f"{len(differ)} of {len(ha)} datasets differ (e.g. {differ[0]})"


def losses(run: Path) -> dict[int, float]:
    from atlas.engine.metrics import metrics_records

    return {r["step"]: r["loss"] for r in metrics_records(run) if "loss" in r}


def compare_training(a: Path, b: Path) -> str:
    from atlas.engine.checkpoint import load_weights

    la, lb = losses(a), losses(b)
    first = next((s for s in sorted(la) if la[s] != lb.get(s)), None)
    wa = load_weights(a / "checkpoints/latest/model.safetensors")
    wb = load_weights(b / "checkpoints/latest/model.safetensors")
    diff = max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)
    if first is None and diff == 0.0:
        return "bitwise identical (every logged loss, every weight)"
    gap = max(abs(la[s] - lb[s]) for s in la)
    return f"first differing loss at step {first}, largest loss gap {gap:.2e}, largest weight gap {diff:.2e}"


def outcomes(path: Path) -> list[tuple[str, int, bool]]:
    data = json.loads(path.read_text())
    return [(e["task"], e["seed"], e["success"]) for e in data["per_episode"]]


def compare_eval(a: Path, b: Path) -> str:
    oa, ob = outcomes(a), outcomes(b)
    differ = sum(x != y for x, y in zip(oa, ob))
    rate = lambda o: sum(s for *_, s in o) / len(o)  # noqa: E731
    return ("identical per episode" if differ == 0 and len(oa) == len(ob)
            else f"{differ} of {len(oa)} episodes differ (success {rate(oa):.3f} vs {rate(ob):.3f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="reach-v3,peg-insert-side-v3")
    parser.add_argument("--episodes", type=int, default=3, help="demos per task (collection)")
    parser.add_argument("--steps", type=int, default=60, help="training steps")
    parser.add_argument("--eval-episodes", type=int, default=4)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="atlas_determinism_") as tmp:
        root = Path(tmp)
        collect = ["collect", "metaworld", "--tasks", args.tasks, "--episodes", str(args.episodes), "--image-size", "64",
                   "--cameras", "corner2", "--seed", "0"]
        for tag, workers in (("w1a", 1), ("w1b", 1), ("w2", 2)):
            atlas([*collect, "--out", str(root / f"{tag}.hdf5"), "--workers", str(workers)])
        rows.append(("collection, same seed, 1 worker twice", compare_collections(root / "w1a.hdf5", root / "w1b.hdf5")))
        rows.append(("collection, same seed, 1 vs 2 workers", compare_collections(root / "w1a.hdf5", root / "w2.hdf5")))

        train = ["train", "--config", str(CONFIG), f"data.path={root / 'w1a.hdf5'}", f"training.max_steps={args.steps}",
                 "training.log_interval=1", "training.val_interval=0", f"training.checkpoint_interval={args.steps}",
                 "training.warmup_steps=5", "logging.progress_bar=false", "logging.tensorboard=false"]
        for tag, threads in (("t1a", 1), ("t1b", 1), ("t2", 2)):
            atlas([*train, "--output-dir", str(root / tag)], threads=threads)
        rows.append(("training, same seed, 1 thread twice", compare_training(root / "t1a", root / "t1b")))
        rows.append(("training, same seed, 1 vs 2 threads", compare_training(root / "t1a", root / "t2")))

        evaluate = ["eval", "--checkpoint", str(root / "t1a"), "--env", "metaworld", "--tasks", args.tasks,
                    "--episodes", str(args.eval_episodes), "--max-steps", "150"]
        for tag, workers in (("e1a", 1), ("e1b", 1), ("e2", 2)):
            atlas([*evaluate, "--workers", str(workers), "--out", str(root / f"{tag}.json")])
        rows.append(("evaluation, one checkpoint, 1 worker twice", compare_eval(root / "e1a.json", root / "e1b.json")))
        rows.append(("evaluation, one checkpoint, 1 vs 2 workers", compare_eval(root / "e1a.json", root / "e2.json")))
    print(f"# tasks {args.tasks}, {args.episodes} demos each, {args.steps} training steps, "
          f"{args.eval_episodes} eval episodes per task; load {os.getloadavg()[0]:.1f}")
    print("| pair | result |\n|---|---|")
    for name, result in rows:
        print(f"| {name} | {result} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
