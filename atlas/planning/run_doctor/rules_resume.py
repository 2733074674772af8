"""Rules on resumed runs: a schedule that changed at the resume (the warning of
atlas/engine/schedules.py `schedule_change`, found in train.log)."""

from __future__ import annotations

from atlas.planning.run_doctor.findings import OK, WARN, RunContext, finding, run_rule
from atlas.planning.run_doctor.records import RunRecords

CHANGE_LINE = r"resuming with a changed LR schedule \((.*?)\): step (\d+) gets LR (\S+) \(it would have been (\S+)"


@run_rule
def resumed_schedule_change(records: RunRecords, context: RunContext):
    """A resume whose LR schedule settings differ from the checkpoint's: every remaining step's LR moves,
    so the curve before and after the resume belong to different schedules (⚠️). Source: the run-plan
    issue's resume warning; seed 004 从checkpoint恢复 resumes with the same config."""
    symptom = ("schedule changed at a resume", "恢复训练时学习率调度被修改")
    source = "engine/schedules.py schedule_change; seed 004 从checkpoint恢复"
    changes = records.messages(CHANGE_LINE)
    resumes = len(records.messages(r"^resumed from "))
    if not changes:
        why = f"{resumes} resume(s), schedule unchanged" if resumes else "not resumed"
        why_zh = f"恢复 {resumes} 次，调度未变" if resumes else "未恢复训练"
        return finding(resumed_schedule_change, OK, (why, why_zh), (symptom[0], why, "-"), (symptom[1], why_zh, "-"),
                       source)
    last = changes[-1]
    what, step, new_lr, old_lr = last.group(1), last.group(2), last.group(3), last.group(4)
    measured = (f"{len(changes)} of {resumes} resume(s) changed {what}; step {step}: LR {old_lr} → {new_lr}",
                f"{resumes} 次恢复中 {len(changes)} 次修改了 {what}；第 {step} 步：学习率 {old_lr} → {new_lr}")
    return finding(resumed_schedule_change, WARN, measured,
                   (symptom[0], f"the LR jumps at step {step}: the config's schedule is not the checkpoint's",
                    "resume with the checkpoint's settings (see its scheduler.json), or start a new run folder "
                    "for the new schedule"),
                   (symptom[1], f"学习率在第 {step} 步跳变：配置中的调度与 checkpoint 不同",
                    "使用 checkpoint 的设置恢复（见其 scheduler.json），或为新调度新建运行目录"),
                   source)
