"""Text, markdown and JSON forms of plans and doctor reports, in English or Chinese."""

from __future__ import annotations

import json
import textwrap
import unicodedata

from atlas.planning.doctor import ICON, Report
from atlas.planning.hardware import ALLOCATOR_MARGIN, CUDA_CONTEXT_GIB
from atlas.planning.planner import Plan
from atlas.planning.run_plan import RunPlan

WORDS = {
    "en": {"parameter": "parameter", "recipe": "recipe", "yours": "yours", "status": "status", "why": "why",
           "arith": "Effective batch", "memory": "Memory per GPU (planner)", "options": "Options",
           "corrected": "Corrected command (paste this)", "score": "Score", "rule": "rule",
           "unknown": "Unknown flags (not checked)", "issues": "Script issues", "recipe_used": "Recipe",
           "fits": "fits", "params": "Parameters", "tool": "Tool"},
    "zh": {"parameter": "参数", "recipe": "配方推荐", "yours": "您的配置", "status": "状态", "why": "说明",
           "arith": "有效 batch 计算", "memory": "单卡显存（规划器）", "options": "修改方案",
           "corrected": "修正后的命令（可直接粘贴）", "score": "评分", "rule": "规则",
           "unknown": "未识别的参数（未检查）", "issues": "脚本问题", "recipe_used": "配方",
           "fits": "适用", "params": "参数量", "tool": "训练工具"},
}


TERMINAL_COLUMNS = 100  # the plain table fits this width; markdown and JSON keep every cell whole


def display_width(text: str) -> int:
    """Terminal columns: wide (CJK, emoji) characters take two, combining marks and variation selectors none."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or ch in "\ufe0f\u200d":
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") or ch in "✅❌⚠" else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` columns (wide characters counted twice)."""
    lines: list[str] = []
    for chunk in textwrap.wrap(text, width=width, break_long_words=True, break_on_hyphens=False) or [""]:
        line = ""
        for ch in chunk:  # wide characters can still overflow a line textwrap measured in code points
            if display_width(line + ch) > width:
                lines.append(line)
                line = ""
            line += ch
        lines.append(line)
    return lines


def _table(header: list[str], rows: list[list[str]], markdown: bool, columns: int = TERMINAL_COLUMNS) -> str:
    """Markdown rows whole; plain text padded, the last column wrapped so every line fits `columns`."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(display_width(str(x)) for x in col) for col in zip(header, *rows)]
    narrow = 16  # other columns wrap at this width when the row is too wide for the last one to keep 40
    for i in range(len(widths) - 1):
        if sum(widths[:-1]) + 2 * (len(widths) - 1) + 40 > columns and widths[i] > narrow:
            widths[i] = max(narrow, display_width(header[i]))
    fixed = sum(widths[:-1]) + 2 * (len(widths) - 1)
    widths[-1] = max(20, min(widths[-1], columns - fixed))
    out = ["  ".join(_pad(h, w) for h, w in zip(header, widths)).rstrip(),
           "  ".join("-" * w for w in widths)]
    for row in rows:
        cells = [_wrap(str(c), w) for c, w in zip(row, widths)]
        for i in range(max(len(c) for c in cells)):
            parts = [_pad(c[i] if i < len(c) else "", w) for c, w in zip(cells, widths)]
            out.append("  ".join(parts).rstrip())
    return "\n".join(out)


def render_report(report: Report, fmt: str = "table", lang: str = "en") -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)
    w = WORDS[lang]
    md = fmt == "markdown"
    rows = [[f.parameter, f.recipe, f.yours, ICON[f.status], f.why_zh if lang == "zh" and f.why_zh else f.why]
            for f in report.findings]
    p = report.parameters
    out = [f"{w['tool']}: {report.tool_label}",
           f"{w['recipe_used']}: {report.recipe} ({report.recipe_reason})",
           (f"{w['params']}: {p.get('preset')} total {p.get('total', 0) / 1e6:.1f}M, trainable "
            f"{p.get('trainable', 0) / 1e6:.1f}M, frozen {p.get('frozen', 0) / 1e6:.1f}M"
            + (f" ({p['origin']})" if p.get("origin") else "")) if p.get("preset") else
           f"{w['params']}: not planned ({p.get('origin', 'no model known')})", "",
           _table([w["parameter"], w["recipe"], w["yours"], w["status"], w["why"]], rows, md), "",
           f"{w['arith']}: {report.arithmetic}", "", f"{w['memory']}:"]
    mem_rows = [[f"{m.gpu_memory_gb:g} GB", str(m.micro_batch_size), f"{m.total_gb:g} / {m.budget_gb:g} GB", ICON[m.status],
                 (f"{m.plan_micro_batch_size} x {m.plan_accumulation}" + (" +ckpt" if m.plan_checkpointing else "")
                  + (" +mea" if m.plan_efficient_attention else "")) if m.plan_fits else "does not fit"]
                for m in report.memory]
    if mem_rows:
        out.append(_table(["GPU", "micro", "need / usable", w["status"], "plan micro x accum"], mem_rows, md))
        out.append(f"(constants: CUDA context {CUDA_CONTEXT_GIB:g} GiB, allocator margin {ALLOCATOR_MARGIN:.0%} of "
                   "dynamic memory)")
    else:
        out.append("  -")
    out += ["", f"{w['options']}:"]
    for o in report.options:
        flags = o.get("flags") or (f"--train_batch_size={o['micro_batch_size']} --gradient_accumulation_steps="
                                   f"{o['gradient_accumulation_steps']}")
        out.append(f"  - {o['name']}: {flags} (= {o['effective_batch_size']}); {w['fits']}: {', '.join(o['fits']) or '-'}")
    if report.issues:
        out += ["", f"{w['issues']}:"] + [f"  - {i}" for i in report.issues]
    if report.unknown_flags:
        out += ["", f"{w['unknown']}: {' '.join(report.unknown_flags)}"]
    if not md:  # prose lines wrap to the terminal; tables are already narrow, the command below stays as is
        out = [line if "\n" in line or display_width(line) <= TERMINAL_COLUMNS else
               "\n".join(_wrap_prose(line)) for line in out]
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


def _wrap_prose(line: str) -> list[str]:
    """A long line in lines of at most TERMINAL_COLUMNS, continuations indented under the text."""
    indent = " " * (len(line) - len(line.lstrip(" -")) or 2)
    first, *rest = _wrap(line, TERMINAL_COLUMNS)
    return [first] + [indent + part for part in _wrap(" ".join(rest), TERMINAL_COLUMNS - len(indent))] if rest else [first]


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
