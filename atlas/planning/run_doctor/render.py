"""The run doctor's table, markdown and JSON, in English or Chinese (the table helper of planning/render.py)."""

from __future__ import annotations

import json

from atlas.planning.render import _table as table
from atlas.planning.run_doctor import RunReport
from atlas.planning.run_doctor.findings import FAIL, ICONS, NA, WARN

HEADERS = {
    "en": ["symptom", "measured", "status", "likely cause", "change", "source"],
    "zh": ["症状", "测量值", "状态", "可能原因", "建议修改", "依据"],
}
WORDS = {
    "en": {"title": "Run doctor", "notes": "notes", "todo": "What to change",
           "exit": "exit code {code} (1 when any ❌)"},
    "zh": {"title": "训练诊断", "notes": "备注", "todo": "建议修改",
           "exit": "退出码 {code}（有 ❌ 时为 1）"},
}


def render_run_report(report: RunReport, fmt: str = "table", lang: str = "en") -> str:
    """`json`: the report as data; `markdown`: one table row per rule; `table`: a terminal table of status,
    symptom and measurement, then the cause, change and source of each ⚠️/❌ row beneath it."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)
    w, h = WORDS[lang], HEADERS[lang]
    head = f"{w['title']}: {report.run_dir} (step {report.last_step})"
    if report.baseline:
        head += f", baseline {report.baseline}"
    if fmt == "markdown":
        rows = [[_escape(c) for c in (*f.text(lang)[:2], ICONS[f.status], *f.text(lang)[2:], f.source)]
                for f in report.findings]
        out = ["## " + head, "", table(h, rows, True)]
    else:
        rows = [[ICONS[f.status], f.text(lang)[0], f.text(lang)[2 if f.status == NA else 1]]
                for f in report.findings]  # a rule not judged says why in place of a measurement
        out = [head, "", table([h[2], h[0], h[1]], rows, False)]
        flagged = [f for f in report.findings if f.status in (WARN, FAIL)]
        if flagged:
            out += ["", f"{w['todo']}:"]
        for f in flagged:
            symptom, _, cause, change = f.text(lang)
            out += [f"  {ICONS[f.status]} {symptom}", f"     {h[3]}: {cause}", f"     {h[4]}: {change}",
                    f"     {h[5]}: {f.source}"]
    if report.notes:
        out += ["", f"{w['notes']}:"] + [f"  - {n}" for n in report.notes]
    out += ["", w["exit"].format(code=report.exit_code)]
    return "\n".join(out)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")
