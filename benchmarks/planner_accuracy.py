"""Planner accuracy: activation bytes predicted from fake micro-batches 1 and 2 vs saved-tensor bytes of a
real CPU forward at larger micro-batches. Goal: ratio within 15%. Last line is the headline figure.
A probe that raises or a ratio that is not a number fails the script (exit 1, naming the case): a skipped
case must never leave the worst error at 0.0.

    python benchmarks/planner_accuracy.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from atlas.config.loader import load_config
from atlas.planning.probe import build_model, dataset_meta, make_batch, probe_model, saved_tensor_bytes

CASES = {
    "mlp": ["model.preset=mlp"],
    "atlas-tiny": ["model.preset=atlas-tiny", "data.image_size=32"],
    "atlas-small": ["model.preset=atlas-small", "data.image_size=64"],
}


class AccuracyCaseFailed(RuntimeError):
    """A case that gave no figure: its probe raised, or predicted/measured is not a finite number."""


def checked_ratio(name: str, micro: int, predicted: float, measured: float) -> float:
    """predicted/measured, or AccuracyCaseFailed naming the case (a NaN would compare as 'no error')."""
    ratio = predicted / measured if measured else float("nan")
    if not math.isfinite(ratio):
        raise AccuracyCaseFailed(f"{name} micro={micro}: predicted {predicted} B, measured {measured} B: no ratio")
    return ratio


def main() -> int:
    try:
        run()
    except AccuracyCaseFailed as err:
        print(f"planner_accuracy: failed: {err}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer presets and micro-batches (CI)")
    args = parser.parse_args()
    names = ["mlp", "atlas-tiny"] if args.quick else list(CASES)
    micros = [8] if args.quick else [4, 16, 32]
    worst = 0.0
    for name in names:
        cfg = load_config(None, CASES[name])
        start = time.perf_counter()
        try:
            probe = probe_model(cfg)
        except Exception as err:  # noqa: BLE001 - any probe failure fails the benchmark, naming the preset
            raise AccuracyCaseFailed(f"{name}: probe failed: {type(err).__name__}: {err}") from err
        meta = dataset_meta(cfg)
        torch.manual_seed(0)
        model = build_model(cfg, meta, False, False)
        for micro in micros:
            real = saved_tensor_bytes(model, make_batch(meta, cfg, micro))
            predicted = probe.activation(False, False).predict(micro)
            ratio = checked_ratio(name, micro, predicted, real)
            worst = max(worst, abs(ratio - 1))
            print(f"{name:12s} micro={micro:3d} predicted={predicted / 2**20:9.2f} MiB measured={real / 2**20:9.2f} MiB "
                  f"ratio={ratio:.3f} (probe {time.perf_counter() - start:.1f} s)")
    print(f"planner accuracy: worst |predicted/measured - 1| = {worst:.1%} (goal 15%)")


if __name__ == "__main__":
    sys.exit(main())
