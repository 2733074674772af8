"""The planning shapes of published VLAs against what their projects publish: parameter counts, and the
doctor's memory per GPU for each tool's headline command on 24 / 48 / 80 GB beside the project's own figure.

Each command is read by its tool's launcher (atlas/planning/launchers) and judged by `run_doctor`, exactly as
`atlas doctor script.sh` would; the memory is the planner's (fake-tensor probe + state formulas), not a run.

    python benchmarks/vla_shapes.py          # prints two markdown tables; last line: the headline
    python benchmarks/vla_shapes.py --quick  # parameter counts only (meta device, seconds)
"""

from __future__ import annotations

import argparse
import time

import torch

from atlas.config.loader import load_config
from atlas.models.shapes.presets import SHAPES
from atlas.planning.doctor import run_doctor
from atlas.planning.probe import build_model, count_params, dataset_meta
from atlas.planning.setup import setup_from_script

# (what, command, what the project publishes for it)
COMMANDS = [
    ("openpi pi0 LoRA (pi0_libero_low_mem_finetune, batch 32, 1 GPU)",
     "XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 uv run scripts/train.py pi0_libero_low_mem_finetune --exp-name=x\n",
     "> 22.5 GB (openpi README.md:29, LoRA fine-tuning)"),
    ("openpi pi0 full (pi0_libero, batch 32, 1 GPU)",
     "XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 uv run scripts/train.py pi0_libero --exp-name=x\n",
     "> 70 GB (openpi README.md:30, full fine-tuning)"),
    ("openpi pi0.5 full (pi05_libero, batch 256 over 8 GPUs)",
     "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 uv run scripts/train.py pi05_libero "
     "--exp-name=x\n", "> 70 GB (openpi README.md:30, full fine-tuning)"),
    ("OFT LoRA r32, 2 images + proprio, batch 8 per GPU",
     "torchrun --nproc-per-node 8 vla-scripts/finetune.py --vla_path openvla/openvla-7b --dataset_name "
     "libero_spatial_no_noops --num_images_in_input 2 --use_proprio True --batch_size 8 --lora_rank 32\n",
     "~62 GB (openvla-oft LIBERO.md:96)"),
    ("OFT LoRA r32, 2 images + proprio, batch 1 per GPU",
     "torchrun --nproc-per-node 8 vla-scripts/finetune.py --vla_path openvla/openvla-7b --dataset_name "
     "libero_spatial_no_noops --num_images_in_input 2 --use_proprio True --batch_size 1 --lora_rank 32\n",
     "~25 GB (openvla-oft LIBERO.md:96)"),
    ("LeRobot pi0.5, batch 64, gradient checkpointing, bf16",
     "lerobot-train --policy.type=pi05 --batch_size=64 --steps=30000 --policy.gradient_checkpointing=true "
     "--policy.dtype=bfloat16\n", "one 80 GB GPU (lerobot docs/source/pi05.mdx:77-99)"),
    ("LeRobot SmolVLA, batch 64", "lerobot-train --policy.type=smolvla --batch_size=64 --steps=100000\n",
     "consumer GPU (SmolVLA blog: runs on consumer hardware)"),
]


def parameter_table() -> list[str]:
    rows = ["| preset | built on meta | trainable | published | difference | source |", "|---|---|---|---|---|---|"]
    for name, shape in SHAPES.items():
        for variant in (name, f"{name}-lora"):
            cfg = load_config(None, [f"model.preset={variant}", "data.image_size=224", "data.num_cameras=2"])
            p = count_params(build_model(cfg, dataset_meta(cfg), False, False, device="meta"))
            published = shape.published["parameters"]
            rows.append(f"| {variant} | {p.total / 1e9:.3f} B | {p.trainable / 1e6:.0f} M | {published / 1e9:.2f} B | "
                        f"{p.total / published - 1:+.1%} | {shape.published['source'] if variant == name else 'LoRA recipe'} |")
    return rows


def memory_table() -> tuple[list[str], float]:
    rows = ["| command (tool's reading) | model | per GPU | 24 GB | 48 GB | 80 GB | published |",
            "|---|---|---|---|---|---|---|"]
    start = time.perf_counter()
    for what, command, published in COMMANDS:
        report = run_doctor(setup_from_script(command), cpu_cores=64)
        cells = []
        for verdict in report.memory:
            mark = {"ok": "fits", "warn": "tight", "fail": "no"}[verdict.status]
            cells.append(f"{verdict.total_gb:.1f} / {verdict.budget_gb:.1f} GB {mark}")
        rows.append(f"| {what} | {report.parameters['preset']} | {report.run['micro_batch_size']} | "
                    + " | ".join(cells) + f" | {published} |")
    return rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="parameter counts only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("\n".join(parameter_table()))
    if args.quick:
        print("parameter counts of the planning shapes vs the published figures (above)")
        return
    rows, seconds = memory_table()
    print()
    print("\n".join(rows))
    print(f"planner memory for {len(COMMANDS)} tool commands beside the projects' figures ({seconds:.0f} s of probing)")


if __name__ == "__main__":
    main()
