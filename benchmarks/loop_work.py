"""What Atlas's training loop does per step beyond a bare hand-written loop, counted rather than timed.

overhead.py times the two loops; on this shared 2-core VM its per-step figure for the 148 k mlp swings by a few
tenths of a millisecond between runs, more than the cost it measures. This script counts the work instead,
which does not move with the machine's load:
- torch operator calls: torch.profiler's CPU events (aten ops and autograd nodes), per step;
- host syncs: `aten::_local_scalar_dense` events (a tensor read on the host: `.item()`, `float(t)`), per step;
- Python function calls: cProfile's call count, per step, with the functions whose counts differ.

Per step = (count of a long run - count of a short run) / (their step difference): process-level work that
both runs do once (building data and model, the final checkpoint, the summary) cancels. Both lengths are
multiples of the log interval, so each run flushes whole log windows. The bare loop is overhead.py's
(`time_bare`: same data reader, model, AdamW groups, EMA, metrics line, clipping), the Atlas side
`atlas.train.train` on overhead.py's config with its only checkpoint at the end.

An estimate in time, beside the counts: the same run measures what one small operator call (a 1-element
`torch.mul`) and one Python function call cost on this machine, and multiplies. The estimate leaves out
what a count cannot see (cache effects of a larger heap, the size of each op); overhead.py's wall clock is the
measurement, this is the part of it the code is responsible for.

    python benchmarks/loop_work.py [--quick] [--models mlp,atlas-tiny]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import timeit
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from atlas.engine.host_memory import keep_freed_host_memory  # noqa: E402
from atlas.train import train  # noqa: E402
from benchmarks.overhead import chosen_models, make_config, time_bare  # noqa: E402

HOST_SYNC = "aten::_local_scalar_dense"
# name -> (model/data overrides, short and long run lengths: multiples of the log interval, 10)
MODELS = {
    "mlp": (["model.preset=mlp", "data.image_size=0"], 50, 150),
    "atlas-tiny": (["model.preset=atlas-tiny", "data.image_size=32"], 20, 60),
}
QUICK = {"mlp": (["model.preset=mlp", "data.image_size=0"], 20, 60)}
NO_PERIODIC_SAVE = 10**9  # the checkpoint interval: only the final save, which both run lengths write


@dataclass
class Counts:
    """What one run did: torch events by name, Python calls by function (file:line name)."""

    ops: Counter
    calls: Counter

    def per_step_since(self, short: Counts, steps: int) -> Counts:
        return Counts(Counter({k: (self.ops[k] - short.ops[k]) / steps for k in self.ops | short.ops}),
                      Counter({k: (self.calls[k] - short.calls[k]) / steps for k in self.calls | short.calls}))


def count_run(side: str, overrides: list[str], steps: int, root: Path) -> Counts:
    """One run of `side` ('bare' or 'atlas') under both counters."""
    cfg = make_config(overrides, steps, NO_PERIODIC_SAVE)
    calls = cProfile.Profile()
    with profile(activities=[ProfilerActivity.CPU]) as events:
        calls.enable()
        if side == "bare":
            time_bare(cfg, root)
        else:
            train(cfg, root)
        calls.disable()
    by_function = {f"{Path(file).name}:{line} {name}": stat[1]
                   for (file, line, name), stat in pstats.Stats(calls).stats.items()}  # stat[1]: all calls
    return Counts(Counter(event.name for event in events.events()), Counter(by_function))


def per_step(side: str, overrides: list[str], short: int, long: int, root: Path) -> Counts:
    count_run(side, overrides, short, root / f"{side}_warm")  # first-call work (imports, lazy inits) out of the way
    first = count_run(side, overrides, short, root / f"{side}_{short}")
    return count_run(side, overrides, long, root / f"{side}_{long}").per_step_since(first, long - short)


def unit_costs() -> tuple[float, float]:
    """(seconds per small torch op, seconds per Python function call) on this machine, best of 5."""
    scalar = torch.ones(1)

    def noop(a, b):
        return a

    op = min(timeit.repeat(lambda: torch.mul(scalar, 2.0), number=20_000, repeat=5)) / 20_000
    call = min(timeit.repeat(lambda: noop(1, 2), number=200_000, repeat=5)) / 200_000
    lambda_call = min(timeit.repeat(lambda: None, number=200_000, repeat=5)) / 200_000
    return max(op - lambda_call, 0.0), max(call - lambda_call, 0.0)  # the timing lambda's own call taken out


def differences(atlas: Counter, bare: Counter, smallest: float) -> list[tuple[str, float]]:
    """Names whose per-step counts differ by at least `smallest`, largest extra first."""
    rows = [(name, atlas[name] - bare[name]) for name in atlas | bare]
    return sorted((row for row in rows if abs(row[1]) >= smallest), key=lambda row: -row[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI: the mlp, 20 and 60 steps")
    parser.add_argument("--models", default=None, help=f"comma-separated subset of {', '.join(MODELS)}")
    parser.add_argument("--show", type=float, default=1.0, help="list names whose per-step counts differ by this much")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    keep_freed_host_memory()  # as overhead.py: both sides under the allocator settings an Atlas CPU run sets
    models = chosen_models(parser, QUICK if args.quick else MODELS, args.models)
    op_s, call_s = unit_costs()
    print(f"# torch {torch.__version__}; one small op {op_s * 1e6:.2f} us, one Python call {call_s * 1e9:.0f} ns here")
    headline = []
    with tempfile.TemporaryDirectory(prefix="atlas_loop_work_") as tmp:
        for name, (overrides, short, long) in models.items():
            bare = per_step("bare", overrides, short, long, Path(tmp) / name)
            atlas = per_step("atlas", overrides, short, long, Path(tmp) / name)
            ops = sum(atlas.ops.values()) - sum(bare.ops.values())
            syncs = atlas.ops[HOST_SYNC] - bare.ops[HOST_SYNC]
            calls = sum(atlas.calls.values()) - sum(bare.calls.values())
            estimate_us = (ops * op_s + calls * call_s) * 1e6
            print(f"{name}: per step bare {sum(bare.ops.values()):.1f} torch events, {bare.ops[HOST_SYNC]:.1f} host syncs, "
                  f"{sum(bare.calls.values()):.1f} Python calls; Atlas {sum(atlas.ops.values()):.1f}, "
                  f"{atlas.ops[HOST_SYNC]:.1f}, {sum(atlas.calls.values()):.1f}")
            for kind, a, b in (("torch events", atlas.ops, bare.ops), ("Python calls", atlas.calls, bare.calls)):
                for what, extra in differences(a, b, args.show):
                    print(f"    {kind:12s} {extra:+7.1f}  {what}")
            headline.append(f"{name} ops {ops:+.1f} syncs {syncs:+.1f} python {calls:+.1f} (~{estimate_us:.0f} us)")
    print("loop work per step, Atlas - bare: " + ", ".join(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
