"""The run doctor's table, markdown and JSON, in English or Chinese (the table helper of planning/render.py)."""

from __future__ import annotations

import json

from atlas.planning.render import _table as table
from atlas.planning.run_doctor import RunReport
from atlas.planning.run_doctor.findings import ICONS

HEADERS = {
    "en": ["symptom", "measured", "status", "likely cause", "change", "source"],
    "zh": ["症状", "测量值", "状态", "可能原因", "建议修改", "依据"],
}
TITLES = {"en": "Run doctor", "zh": "训练诊断"}
NOTES = {"en": "notes", "zh": "备注"}
EXIT = {"en": "exit code {code} (1 when any ❌)", "zh": "退出码 {code}（有 ❌ 时为 1）"}


def render_run_report(report: RunReport, fmt: str = "table", lang: str = "en") -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)
    rows = []
    for f in report.findings:
        symptom, cause, change = f.text(lang)
        rows.append([symptom, f.measured, ICONS[f.status], cause, change, f.source])
    md = fmt == "markdown"
    head = f"{TITLES[lang]}: {report.run_dir} (step {report.last_step})"
    if report.baseline:
        head += f", baseline {report.baseline}"
    out = [("## " if md else "") + head, "", table(HEADERS[lang], [[_cell(c, md) for c in r] for r in rows], md)]
    if report.notes:
        out += ["", f"{NOTES[lang]}:"] + [f"  - {n}" for n in report.notes]
    out += ["", EXIT[lang].format(code=report.exit_code)]
    return "\n".join(out)


def _cell(text: str, markdown: bool) -> str:
    return text.replace("|", "\\|") if markdown else text
