"""What autograd keeps for backward, by dtype and shape: the planner's probe (fake tensors, CPU autocast)
against a real forward on this machine's GPU (CUDA autocast), on the same shallow config.

Why: on an H200 rdt-1b's forward kept 25.3 GiB where the planner's activation fit said 17.1 GiB
(benchmarks/RESULTS.md, "CUDA checks"); atlas-base matched within 1 %. A census of both sides, grouped by
(dtype, shape), names the tensors that differ. `python benchmarks/saved_tensor_census.py --out FILE`
writes the census of the device it runs on (fake on CPU, real on CUDA); `--compare A B` prints the rows
whose bytes differ.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cuda_checks import CASES, COMMON  # noqa: E402

from atlas.config import load_config  # noqa: E402
from atlas.planning.probe import build_fake_model, build_model, dataset_meta, gpu_autocast, make_batch  # noqa: E402

SHALLOW = ["model.fusion.depth=2", "model.vision.depth=1", "data.batch_size=2"]


def census(case: str) -> dict:
    cfg = load_config(None, COMMON + CASES[case] + SHALLOW)
    meta = dataset_meta(cfg)
    cuda = torch.cuda.is_available()
    if cuda:
        model, fake = build_model(cfg, meta, False, False).cuda(), contextlib.nullcontext()
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        from torch._subclasses.fake_tensor import FakeTensorMode

        fake = FakeTensorMode(allow_non_fake_inputs=True)
        with fake:
            model = build_fake_model(cfg, meta, False, False)
        autocast = gpu_autocast("bf16")  # the planner's probe: CPU autocast with CUDA's float32 op list
    held = {p.untyped_storage()._cdata for p in model.parameters()} | {b.untyped_storage()._cdata for b in model.buffers()}
    seen: dict[int, tuple[str, str, int]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in held and storage._cdata not in seen:
            seen[storage._cdata] = (str(t.dtype).replace("torch.", ""), "x".join(map(str, t.shape)), storage.nbytes())
        return t

    with fake:
        batch = make_batch(meta, cfg, cfg.data.batch_size)
        if cuda:
            batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
            out = model(batch)
        del out
    rows = Counter()
    count = Counter()
    for dtype, shape, nbytes in seen.values():
        rows[f"{dtype} {shape}"] += nbytes
        count[f"{dtype} {shape}"] += 1
    return {"device": "cuda" if cuda else "cpu-fake", "total_bytes": sum(rows.values()),
            "rows": {k: {"bytes": v, "count": count[k]} for k, v in rows.most_common()}}


def compare(a: dict, b: dict) -> None:
    print(f"total: {a['total_bytes'] / 2**20:.1f} MiB ({a['device']}) vs {b['total_bytes'] / 2**20:.1f} MiB ({b['device']})")
    keys = sorted(set(a["rows"]) | set(b["rows"]),
                  key=lambda k: -abs(a["rows"].get(k, {}).get("bytes", 0) - b["rows"].get(k, {}).get("bytes", 0)))
    print("| dtype shape | MiB (count) A | MiB (count) B |")
    print("|---|---|---|")
    for k in keys[:40]:
        ra, rb = a["rows"].get(k, {"bytes": 0, "count": 0}), b["rows"].get(k, {"bytes": 0, "count": 0})
        if ra["bytes"] != rb["bytes"]:
            print(f"| {k} | {ra['bytes'] / 2**20:.2f} ({ra['count']}) | {rb['bytes'] / 2**20:.2f} ({rb['count']}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="rdt-1b")
    parser.add_argument("--out")
    parser.add_argument("--compare", nargs=2)
    args = parser.parse_args()
    if args.compare:
        compare(*(json.loads(Path(p).read_text()) for p in args.compare))
        return
    result = census(args.case)
    print(f"{result['device']}: {result['total_bytes'] / 2**20:.1f} MiB saved in {len(result['rows'])} kinds")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
