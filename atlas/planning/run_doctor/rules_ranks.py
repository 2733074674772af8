"""Rules on several processes and on speed: per-rank step time spread, scaling against a one-process
baseline (`--baseline RUN_DIR`), and throughput against the planner's assumed MFU."""

from __future__ import annotations

import statistics

from atlas.planning.hardware import DEFAULT_MFU
from atlas.planning.run_doctor.findings import FAIL, OK, WARN, RunContext, finding, not_judged, run_rule
from atlas.planning.run_doctor.records import RunRecords

SPREAD_WARN = 0.10  # seed 002: communication + gradient sync cost ~5-10 %; a rank idle longer is beyond it
SPREAD_FAIL = 0.20  # seed 002 expects 80-100 % utilisation on every GPU: a rank idle >20 % is below it
SEED002_SPEEDUP = (1.8, 1.9)  # seed 002: what a second GPU should give
EFFICIENCY_WARN = SEED002_SPEEDUP[0] / 2  # under 1.8x for two processes (90 % per process)
EFFICIENCY_FAIL = 0.60  # most of an added process's time lost: 1.2x for two
MFU_WARN = 0.5  # under half the MFU the planner assumes: its time estimates are twice too optimistic


def _rank_means(records: RunRecords, phase: str) -> dict[int, float]:
    """Mean `time/<phase>_ms/rank<R>` per rank over the windows after the first (the warm-up)."""
    lines = records.training_lines[1:] or records.training_lines
    prefix = f"time/{phase}_ms/rank"
    ranks = sorted({int(k[len(prefix):]) for r in lines for k in r if k.startswith(prefix)})
    return {rank: statistics.fmean(float(r[f"{prefix}{rank}"]) for r in lines if f"{prefix}{rank}" in r)
            for rank in ranks}


@run_rule
def rank_imbalance(records: RunRecords, context: RunContext):
    """One slow or idle rank: the largest gap between ranks in data wait or forward/backward time per step
    (`time/<phase>_ms/rank<R>`, atlas/loop/window.py), as a share of the step, against SPREAD_WARN /
    SPREAD_FAIL. Ranks wait for each other in the step's collectives, so the slow rank is the one that
    waits most for its own input (or computes longest) while the others wait for it. Seed 002 Q1:
    两张GPU利用率不均衡 → 数据不均匀或batch size太小."""
    symptom = ("one slow or idle rank", "某个进程（rank）偏慢或空闲")
    source = "seed 002 Q1 (GPU利用率不均衡); seed 002 期望 (Utilization 80-100%)"
    world = int(records.plan.get("world_size") or 1)
    wait, compute, step = (_rank_means(records, p) for p in ("data_wait", "forward_backward", "step"))
    if world < 2 or len(step) < 2:
        missing = (("one process", "单进程") if world < 2 else
                   ("per-rank times not logged (a run from before they were)", "没有记录各 rank 的计时"))
        return not_judged(rank_imbalance, symptom, missing, source)
    step_ms = max(statistics.fmean(step.values()), 1e-9)
    gaps = {"data wait": (max(wait.values()) - min(wait.values())) / step_ms,
            "forward/backward": (max(compute.values()) - min(compute.values())) / step_ms}
    spread = max(gaps.values())
    slow_by_input = gaps["data wait"] >= gaps["forward/backward"] / 2
    where = "data wait" if slow_by_input else "forward/backward"
    slow = max(wait, key=wait.get) if slow_by_input else max(compute, key=compute.get)
    per_rank = ", ".join(f"rank{r} {wait[r]:.3g}/{compute[r]:.3g}" for r in sorted(step))
    measured = (f"spread {spread:.0%} of a {step_ms:.3g} ms step in {where}; data wait/forward-backward ms: "
                f"{per_rank}",
                f"各 rank 差距为 {step_ms:.3g} ms 步时的 {spread:.0%}（{'数据等待' if slow_by_input else '前向/反向'}）；"
                f"数据等待/前向反向 ms：{per_rank}")
    if spread <= SPREAD_WARN:
        return finding(rank_imbalance, OK, measured, (symptom[0], "ranks keep pace", "-"),
                       (symptom[1], "各 rank 步调一致", "-"), source)
    cause = (f"rank {slow} waits for its own input while the others wait for it" if slow_by_input
             else f"rank {slow} computes longest while the others wait for it")
    cause_zh = (f"rank {slow} 在等待自己的数据，其他 rank 在等它" if slow_by_input
                else f"rank {slow} 计算最慢，其他 rank 在等它")
    return finding(rank_imbalance, FAIL if spread > SPREAD_FAIL else WARN, measured,
                   (symptom[0], cause, "check that rank's data (its episodes, disk, decode) and its device; more "
                    "data_loading.num_workers; a larger data.batch_size evens the work out"),
                   (symptom[1], cause_zh, "检查该 rank 的数据（episode、磁盘、解码）和设备；增加 "
                    "data_loading.num_workers；增大 data.batch_size 使工作量更均匀"),
                   source)


def _throughput(records: RunRecords) -> float | None:
    lines = records.training_lines[1:] or records.training_lines
    values = [float(r["samples_per_s"]) for r in lines if isinstance(r.get("samples_per_s"), (int, float))]
    return statistics.median(values) if values else None


@run_rule
def scaling_efficiency(records: RunRecords, context: RunContext):
    """Scaling against `--baseline RUN_DIR` (the same config on fewer processes): the speed-up in median
    samples/s over the one seed 002 expects (1.8-1.9x for a second GPU, i.e. 90 % per process), ⚠️ under
    EFFICIENCY_WARN, ❌ under EFFICIENCY_FAIL. Seed 002 Q2: 训练速度没有提升 → 数据加载是否是瓶颈, batch
    size是否足够."""
    symptom = ("speed-up over the baseline run", "相对基准运行的加速比")
    source = "seed 002 (2 GPU ~1.8-1.9x; Q2 训练速度没有提升)"
    baseline = context.baseline
    if baseline is None:
        return not_judged(scaling_efficiency, symptom, ("no --baseline RUN_DIR given", "未指定 --baseline RUN_DIR"),
                          source)
    mine, theirs = _throughput(records), _throughput(baseline)
    world, base_world = int(records.plan.get("world_size") or 1), int(baseline.plan.get("world_size") or 1)
    if not mine or not theirs:
        return not_judged(scaling_efficiency, symptom, ("no samples_per_s in one of the runs",
                                                        "其中一个运行没有 samples_per_s"), source)
    speedup, ideal = mine / theirs, world / base_world
    efficiency = speedup / ideal
    expected = f"{SEED002_SPEEDUP[0] * ideal / 2:.2g}-{SEED002_SPEEDUP[1] * ideal / 2:.2g}x"
    measured = (f"{mine:.4g} vs {theirs:.4g} samples/s ({world} vs {base_world} processes): {speedup:.2f}x, "
                f"{efficiency:.0%} of linear; seed 002 expects {expected}",
                f"{mine:.4g} 对 {theirs:.4g} samples/s（{world} 对 {base_world} 个进程）：{speedup:.2f}x，"
                f"线性的 {efficiency:.0%}；seed 002 预期 {expected}")
    if baseline.plan.get("effective_batch_size") != records.plan.get("effective_batch_size"):
        measured = (measured[0] + "; the effective batches differ", measured[1] + "；两者有效 batch 不同")
    if efficiency >= EFFICIENCY_WARN:
        return finding(scaling_efficiency, OK, measured, (symptom[0], "scales as seed 002 expects", "-"),
                       (symptom[1], "加速比符合 seed 002 的预期", "-"), source)
    return finding(scaling_efficiency, FAIL if efficiency < EFFICIENCY_FAIL else WARN, measured,
                   (symptom[0], "the added processes wait: for data, for the gradient all-reduce, or each other",
                    "see input_bound and rank_imbalance; raise data.batch_size (at least 8 per GPU, seed 002) or "
                    "data_loading.num_workers; check the interconnect"),
                   (symptom[1], "新增进程在等待：等数据、等梯度 all-reduce 或彼此等待",
                    "参见 input_bound 和 rank_imbalance；增大 data.batch_size（seed 002：每卡至少 8）或 "
                    "data_loading.num_workers；检查卡间互联"),
                   source)


@run_rule
def throughput_vs_plan(records: RunRecords, context: RunContext):
    """Throughput against the planner: the logged MFU (`mfu`, CUDA) against the MFU the planner assumes
    (planning/hardware.py DEFAULT_MFU), ⚠️ under MFU_WARN of it: the planner's step times are then that
    much too optimistic. Judged only where the loop logs `mfu`; the planner times GPUs, not CPUs."""
    symptom = ("throughput vs the planner's estimate", "吞吐量与规划器估计对比")
    source = "planning/timing.py (assumed MFU); seed 002 训练速度估算"
    mfus = [float(r["mfu"]) for r in records.training_lines[1:] if isinstance(r.get("mfu"), (int, float))]
    if not mfus:
        return not_judged(throughput_vs_plan, symptom, ("no mfu logged (the planner estimates GPU steps only)",
                                                        "没有记录 mfu（规划器只估计 GPU 步时）"), source)
    mfu = statistics.median(mfus)
    measured = (f"MFU {mfu:.1%} vs {DEFAULT_MFU:.0%} assumed by the planner", f"MFU {mfu:.1%}，规划器假设 {DEFAULT_MFU:.0%}")
    if mfu >= MFU_WARN * DEFAULT_MFU:
        return finding(throughput_vs_plan, OK, measured, (symptom[0], "as fast as planned", "-"),
                       (symptom[1], "与规划速度相符", "-"), source)
    return finding(throughput_vs_plan, WARN, measured,
                   (symptom[0], "the GPU runs far below the planned rate: input, small micro-batches or syncs",
                    "see input_bound; a larger data.batch_size; atlas plan --measure calibrates the estimate"),
                   (symptom[1], "GPU 远低于规划速率：数据、micro-batch 太小或同步开销",
                    "参见 input_bound；增大 data.batch_size；atlas plan --measure 可校准估计"),
                   source)
