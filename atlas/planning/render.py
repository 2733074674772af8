"""Text, markdown and JSON forms of plans and doctor reports, in English or Chinese."""

from __future__ import annotations

import json

from atlas.planning.doctor import ICON, Report
from atlas.planning.hardware import ALLOCATOR_MARGIN, CUDA_CONTEXT_GIB
from atlas.planning.planner import Plan
from atlas.planning.run_plan import RunPlan

WORDS = {
    "en": {"parameter": "parameter", "recipe": "recipe", "yours": "yours", "status": "status", "why": "why",
           "arith": "Effective batch", "memory": "Memory per GPU (planner)", "options": "Options",
           "corrected": "Corrected command (paste this)", "score": "Score", "rule": "rule",
           "unknown": "Unknown flags (not checked)", "issues": "Script issues", "recipe_used": "Recipe",
           "fits": "fits", "params": "Parameters"},
    "zh": {"parameter": "参数", "recipe": "配方推荐", "yours": "您的配置", "status": "状态", "why": "说明",
           "arith": "有效 batch 计算", "memory": "单卡显存（规划器）", "options": "修改方案",
           "corrected": "修正后的命令（可直接粘贴）", "score": "评分", "rule": "规则",
           "unknown": "未识别的参数（未检查）", "issues": "脚本问题", "recipe_used": "配方",
           "fits": "适用", "params": "参数量"},
}


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*["-" * w for w in widths])] + [fmt.format(*r) for r in rows])


def render_report(report: Report, fmt: str = "table", lang: str = "en") -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)
    w = WORDS[lang]
    md = fmt == "markdown"
    rows = [[f.parameter, f.recipe, f.yours, ICON[f.status], f.why_zh if lang == "zh" and f.why_zh else f.why]
            for f in report.findings]
    p = report.parameters
    out = [f"{w['recipe_used']}: {report.recipe} ({report.recipe_reason})",
           f"{w['params']}: {p.get('preset')} total {p.get('total', 0) / 1e6:.1f}M, trainable {p.get('trainable', 0) / 1e6:.1f}M, "
           f"frozen {p.get('frozen', 0) / 1e6:.1f}M", "",
           _table([w["parameter"], w["recipe"], w["yours"], w["status"], w["why"]], rows, md), "",
           f"{w['arith']}: {report.arithmetic}", "", f"{w['memory']}:"]
    mem_rows = [[f"{m.gpu_memory_gb:g} GB", str(m.micro_batch_size), f"{m.total_gb:g} / {m.budget_gb:g} GB", ICON[m.status],
                 f"{m.plan_micro_batch_size} x {m.plan_accumulation}" + (" +ckpt" if m.plan_checkpointing else "")
                 + (" +mea" if m.plan_efficient_attention else "")] for m in report.memory]
    out.append(_table(["GPU", "micro", "need / usable", w["status"], "plan micro x accum"], mem_rows, md))
    out.append(f"(constants: CUDA context {CUDA_CONTEXT_GIB:g} GiB, allocator margin {ALLOCATOR_MARGIN:.0%} of dynamic memory)")
    out += ["", f"{w['options']}:"]
    for o in report.options:
        out.append(f"  - {o['name']}: --train_batch_size={o['micro_batch_size']} --gradient_accumulation_steps="
                   f"{o['gradient_accumulation_steps']} (= {o['effective_batch_size']}); {w['fits']}: {', '.join(o['fits']) or '-'}")
    if report.issues:
        out += ["", f"{w['issues']}:"] + [f"  - {i}" for i in report.issues]
    if report.unknown_flags:
        out += ["", f"{w['unknown']}: {' '.join(report.unknown_flags)}"]
    fence = "```bash" if md else ""
    out += ["", f"{w['corrected']}:", fence, report.corrected, "```" if md else ""]
    out.append(f"{w['score']}: {report.score}/100 ({w['rule']}: {report.score_rule})")
    return "\n".join(line for line in out if line is not None)


RUN_FIELDS = ("micro_batch_size", "gradient_accumulation_steps", "world_size", "effective_batch_size",
              "learning_rate", "base_learning_rate", "lr_scaling", "base_batch_size", "min_lr", "mixed_precision",
              "gradient_checkpointing", "memory_efficient_attention", "profile")


def plan_dict(run: RunPlan, plan: Plan) -> dict:
    """`atlas plan --format json`: the run's own numbers at the top (as `atlas train` would run it), the
    planner's memory and timing for that run, and what the planner would change under `suggested`."""
    d = plan.to_dict()
    d.update({k: v for k, v in run.to_dict().items() if k in RUN_FIELDS})
    d["suggested"] = (run.memory_plan or {}).get("suggested")
    d["warnings"] = list(run.warnings)
    d["notes"] = list(run.notes) + d["notes"]
    return d


def render_plan(run: RunPlan, plan: Plan, fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(plan_dict(run, plan), indent=2)
    d = plan.to_dict()
    p = d["parameters"]
    m = d["memory"]
    lines = [
        f"GPU: {plan.gpu.name} x {plan.gpus}, {plan.gpu.memory_gb:g} GB, usable {d['budget_gb']} GB "
        f"(max_memory_usage), strategy {plan.strategy}",
        f"parameters: total {p['total']:,}  trainable {p['trainable']:,}  frozen {p['frozen']:,}",
        "  " + ", ".join(f"{k}: {v['trainable']:,}+{v['frozen']:,} frozen" for k, v in p["by_module"].items()),
        f"run: micro-batch {run.micro_batch_size} x {run.world_size} GPU(s) x accumulation "
        f"{run.gradient_accumulation_steps} = effective {run.effective_batch_size}; learning rate "
        f"{run.learning_rate:g} (base {run.base_learning_rate:g}); {run.mixed_precision}; gradient_checkpointing "
        f"{run.gradient_checkpointing}, memory_efficient_attention {run.memory_efficient_attention}",
        _suggested_line(run),
        f"largest micro-batch by option: {d['max_micro_batch']}",
        "memory per GPU (GiB): " + ", ".join(f"{k} {v}" for k, v in m.items() if k != "unit") + ("" if plan.fits else "  DOES NOT FIT"),
        f"  constants: CUDA context {CUDA_CONTEXT_GIB:g} GiB, allocator margin {ALLOCATOR_MARGIN:.0%} of dynamic memory",
        f"data workers: {plan.workers_per_process} per process ({plan.cpu_cores} CPU cores)",
        f"FLOPs per sample: forward {d['flops_per_sample']['forward']:.3g}, train {d['flops_per_sample']['train']:.3g} "
        f"(trainable 3x, frozen 1x); assumed MFU {plan.mfu:.0%}; peak {plan.gpu.bf16_tflops:g} TFLOPs, link "
        f"{plan.gpu.link} ({plan.gpu.link_gbps:g} GB/s)",
        "",
        _table(["GPUs", "micro x accum", "step s", "all-reduce s", "speed-up", f"hours ({plan.timing and 'max_steps'})"],
               [[str(r.gpus), f"{r.micro_batch_size} x {r.gradient_accumulation_steps}", f"{r.step_s:.3g}",
                 f"{r.allreduce_s:.3g}", f"{r.speedup:.2f}x", f"{r.total_hours:.3g}"] for r in plan.timing], False),
    ]
    lines += [f"warning: {w}" for w in run.warnings]
    lines += [f"note: {n}" for n in (*run.notes, *plan.notes)]
    lines.append(f"(probe {d['probe_seconds']} s on fake tensors)")
    return "\n".join(lines)


def _suggested_line(run: RunPlan) -> str:
    s = (run.memory_plan or {}).get("suggested")
    if not s:
        return "suggested: -"
    same = (s["micro_batch_size"], s["gradient_checkpointing"], s["memory_efficient_attention"]) == (
        run.micro_batch_size, run.gradient_checkpointing, run.memory_efficient_attention)
    if same:
        return "suggested: keep it (the planner would choose the same)"
    return (f"suggested: micro-batch {s['micro_batch_size']} x accumulation {s['gradient_accumulation_steps']}, "
            f"gradient_checkpointing {s['gradient_checkpointing']}, memory_efficient_attention "
            f"{s['memory_efficient_attention']} ({'fits' if s['fits'] else 'does not fit'}; "
            "memory_optimization.auto_micro_batch=true applies it)")
