"""Rules on GPU memory: the peak against the budget and the planner's micro-batch, and the out-of-memory
back-offs the loop made (atlas/engine/oom.py)."""

from __future__ import annotations

import statistics

from atlas.planning.run_doctor.findings import OK, WARN, RunContext, finding, not_judged, run_rule
from atlas.planning.run_doctor.records import RunRecords

EDGE = 0.95  # reserved peak above 95 % of the budget: one longer batch from an out-of-memory error
ROOMY = 0.60  # below 60 %: room for a larger micro-batch (seed 003 raises 8 → 10 with memory left)
OOM_LINE = r"OOM at step (\d+): micro_batch (\d+)→(\d+), accumulation (\d+)→(\d+)"


@run_rule
def gpu_memory(records: RunRecords, context: RunContext):
    """GPU memory: the reserved peak (gpu_peak_reserved_gib) against plan.json's budget (max_memory_usage x
    the GPU), and the micro-batch the planner says would still fit. Seed 003 性能调优: 如果显存仍有富余 →
    batch_size 8→10 (⚠️ below ROOMY when the planner's micro-batch is larger); seed 000: 比较吃紧 (⚠️ above
    EDGE)."""
    symptom = ("GPU memory: peak vs budget", "显存：峰值与预算")
    source = "seed 003 性能调优策略 (如果显存仍有富余); seed 000 (48GB: 比较吃紧)"
    peaks = [float(r["gpu_peak_reserved_gib"]) for r in records.training_lines
             if isinstance(r.get("gpu_peak_reserved_gib"), (int, float))]
    memory = records.plan.get("memory_plan") or {}
    if not peaks or not memory.get("budget_gb"):
        return not_judged(gpu_memory, symptom, ("no GPU peaks or memory plan (a CPU run)",
                                                "没有显存峰值或显存规划（CPU 训练）"), source)
    peak, budget = max(peaks), float(memory["budget_gb"])
    micro = records.plan.get("micro_batch_size")
    suggested = (memory.get("suggested") or {}).get("micro_batch_size")
    predicted = ((memory.get("configured") or {}).get("memory") or {}).get("total")
    share = peak / budget
    measured = (f"peak reserved {peak:.3g} GiB of {budget:.3g} GiB budget ({share:.0%})"
                + (f"; planner predicted {predicted:.3g} GiB" if isinstance(predicted, (int, float)) else "")
                + f"; micro-batch {micro}, planner's largest {suggested}",
                f"峰值（reserved）{peak:.3g} GiB / 预算 {budget:.3g} GiB（{share:.0%}）"
                + (f"；规划器预测 {predicted:.3g} GiB" if isinstance(predicted, (int, float)) else "")
                + f"；micro-batch {micro}，规划器最大 {suggested}")
    if share > EDGE:
        return finding(gpu_memory, WARN, measured,
                       (symptom[0], "the peak is at the edge of the budget: a longer batch will run out of memory",
                        "set memory_optimization.dynamic_batch_size=true, or lower data.batch_size and raise "
                        "training.gradient_accumulation_steps to keep the effective batch"),
                       (symptom[1], "峰值已接近预算：更长的 batch 会导致 OOM",
                        "设置 memory_optimization.dynamic_batch_size=true，或减小 data.batch_size 并增大 "
                        "training.gradient_accumulation_steps 以保持有效 batch"),
                       source)
    if share < ROOMY and isinstance(suggested, int) and isinstance(micro, int) and suggested > micro:
        return finding(gpu_memory, WARN, measured,
                       (symptom[0], f"{1 - share:.0%} of the budget unused: a larger micro-batch would fit",
                        f"data.batch_size={suggested} with gradient_accumulation_steps lowered to keep the effective "
                        "batch (or memory_optimization.auto_micro_batch=true)"),
                       (symptom[1], f"预算中 {1 - share:.0%} 的显存未使用：可以用更大的 micro-batch",
                        f"data.batch_size={suggested}，并相应减小 gradient_accumulation_steps 保持有效 batch"
                        "（或设置 memory_optimization.auto_micro_batch=true）"),
                       source)
    return finding(gpu_memory, OK, measured, (symptom[0], "the micro-batch uses the memory well", "-"),
                   (symptom[1], "micro-batch 对显存的利用合理", "-"), source)


def _throughput(lines: list[dict]) -> float | None:
    values = [float(r["samples_per_s"]) for r in lines if isinstance(r.get("samples_per_s"), (int, float))]
    return statistics.median(values) if values else None


@run_rule
def oom_backoffs(records: RunRecords, context: RunContext):
    """Out-of-memory back-offs the loop made (train.log "OOM at step S: micro_batch A→B, accumulation C→D"),
    and what they cost: median samples/s after the first back-off against before it (the windows around it
    left out). Any back-off is ⚠️: the run survived, but started with a micro-batch that does not fit.
    Seed 004: OOM → 减少batch_size, 增加gradient_accumulation_steps, 冻结更多模块; seed 003 dynamic_batch_size."""
    symptom = ("out-of-memory back-offs", "显存不足（OOM）回退")
    source = "seed 004 常见问题速查: OOM; seed 003 动态批处理"
    backoffs = records.messages(OOM_LINE)
    if not backoffs:
        return finding(oom_backoffs, OK, ("none", "无"), (symptom[0], "no out-of-memory error", "-"),
                       (symptom[1], "没有 OOM", "-"), source)
    first, last = backoffs[0], backoffs[-1]
    step = int(first.group(1))
    lines = records.training_lines
    interval = records.setting("training.log_interval", 1) or 1
    before = _throughput([r for r in lines[1:] if r["step"] < step])
    after = _throughput([r for r in lines if r["step"] > step + interval])
    cost = (f"; throughput {before:.4g} → {after:.4g} samples/s ({after / before - 1:+.0%})"
            if before and after else "")
    cost_zh = (f"；吞吐量 {before:.4g} → {after:.4g} samples/s（{after / before - 1:+.0%}）"
               if before and after else "")
    micro, accumulation = last.group(3), last.group(5)
    measured = (f"{len(backoffs)} back-off(s), first at step {step}: micro-batch {first.group(2)}→{micro}, "
                f"accumulation {first.group(4)}→{accumulation}{cost}",
                f"回退 {len(backoffs)} 次，首次在第 {step} 步：micro-batch {first.group(2)}→{micro}，"
                f"累积 {first.group(4)}→{accumulation}{cost_zh}")
    return finding(oom_backoffs, WARN, measured,
                   (symptom[0], f"micro-batch {first.group(2)} does not fit: every back-off repeats a step",
                    f"start at data.batch_size={micro}, training.gradient_accumulation_steps={accumulation}; or "
                    "memory_optimization.gradient_checkpointing=true / freeze more of the model"),
                   (symptom[1], f"micro-batch {first.group(2)} 放不下：每次回退都要重做一步",
                    f"直接使用 data.batch_size={micro}、training.gradient_accumulation_steps={accumulation}；或开启 "
                    "memory_optimization.gradient_checkpointing=true / 冻结更多模块"),
                   source)
