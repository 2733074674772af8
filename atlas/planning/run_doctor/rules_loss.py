"""Rules on the training loss and the gradient norm (seed 001 "学习率怎么调整", seed 004 常见问题速查)."""

from __future__ import annotations

import statistics

from atlas.planning.run_doctor.curve import SMOOTH, Curve
from atlas.planning.run_doctor.findings import FAIL, OK, WARN, RunContext, finding, not_judged, run_rule
from atlas.planning.run_doctor.records import RunRecords

MIN_WINDOWS = 6  # fewer log lines than this say nothing about a trend (three per third of the tail)
FLAT_SIGMAS = 2.0  # a fall smaller than 2 standard deviations of its own measuring noise is not a fall
SLOW_FRACTION = 0.05  # under 5 % of the loss over the last half: halving it would take >10x the run so far
DECAYED = 0.10  # at under a tenth of the peak LR a flattening loss is the schedule ending, not a stall
BARELY_FELL = 0.25  # at a working LR a policy removes more than a quarter of its starting loss early on
RISE_SIGMAS = 2.0  # a climb beyond 2 sigma of the difference of two smoothed levels (one-sided: ~2 % by chance)
RISE_FRACTION = 0.10  # ... and beyond 10 % of the level it climbed from is a real divergence
OSCILLATION = 0.15  # window-to-window noise above 15 % of the loss: the updates throw the loss around
CLIPPED_SHARE = 0.5  # clipping active in most windows: the clip, not the LR, sets the step size

LOSS_SOURCE_FALL = "seed 004 常见问题速查: Loss不下降; seed 001 §3 调整策略"
LOSS_SOURCE_OSC = "seed 004 常见问题速查: Loss震荡; seed 001 §3 调整策略"


def loss_curve(records: RunRecords) -> Curve:
    lines = records.training_lines
    return Curve([r["step"] for r in lines], [float(r["loss"]) for r in lines])


def climbed(curve: Curve) -> tuple[bool, float, int, int]:
    """(did the loss climb, by how much, from which step, to which step): shared by both loss rules, so
    a curve that rose and then went flat is called diverging once, not also 'not falling'."""
    rise, low, high = curve.largest_rise()
    level = curve.smoothed[curve.steps.index(low)]
    sd = curve.noise * (2.0 / SMOOTH) ** 0.5  # of the difference of two SMOOTH-window means
    return rise > max(RISE_SIGMAS * sd, RISE_FRACTION * abs(level)), rise, low, high


def _lr_at(records: RunRecords, step: int) -> float | None:
    return next((r.get("lr") for r in records.training_lines if r["step"] == step), None)


@run_rule
def loss_not_falling(records: RunRecords, context: RunContext):
    """Loss not falling (or too slowly): over the last half of the logged windows, the mean of its first
    third minus the mean of its last third is under FLAT_SIGMAS standard deviations of that difference
    (from the windows' own noise) or under SLOW_FRACTION of the loss. ❌ when the loss never fell by
    BARELY_FELL of its start (seed 001: 下降太慢 → 可以尝试增加学习率; seed 004: 检查数据质量); ⚠️ when it
    fell and then stalled at a working LR, which may be convergence (seed 004: Loss不下降 → 降低学习率,
    增加warmup_steps); ✅ when it stalled only once the schedule had decayed the LR under DECAYED of its
    peak. A curve that climbed is `loss_diverging`'s."""
    curve = loss_curve(records)
    symptom = ("loss not falling", "loss 不下降")
    if len(curve.values) < MIN_WINDOWS:
        return not_judged(loss_not_falling, symptom, (f"fewer than {MIN_WINDOWS} training log lines",
                                                      f"训练日志行少于 {MIN_WINDOWS} 行"), LOSS_SOURCE_FALL)
    drop, drop_sd = curve.tail_drop()
    tail = curve.values[len(curve.values) // 2:]
    level = statistics.fmean(tail)
    stall = curve.stall_step(FLAT_SIGMAS * curve.noise)
    lr = _lr_at(records, stall)
    lr_text = f"{lr:.3g}" if isinstance(lr, (int, float)) else "?"
    measured = (f"last half {tail[0]:.4g}→{tail[-1]:.4g} (fall {drop:+.3g}, noise ±{drop_sd:.2g}); "
                f"lowest reached by step {stall} at LR {lr_text}",
                f"后半段 {tail[0]:.4g}→{tail[-1]:.4g}（下降 {drop:+.3g}，噪声 ±{drop_sd:.2g}）；"
                f"第 {stall} 步达到最低（学习率 {lr_text}）")
    flat = drop < max(FLAT_SIGMAS * drop_sd, SLOW_FRACTION * abs(level))
    if not flat or climbed(curve)[0]:
        return finding(loss_not_falling, OK, measured, (symptom[0], "the loss is still falling", "-"),
                       (symptom[1], "loss 仍在下降", "-"), LOSS_SOURCE_FALL)
    start, lowest = curve.smoothed[0], min(curve.smoothed)
    if start - lowest < BARELY_FELL * abs(start):
        return finding(
            loss_not_falling, FAIL, measured,
            (symptom[0], f"the loss never fell far: {start:.4g} at the start, lowest {lowest:.4g}; the LR "
             f"({lr_text}) is too small for this model, or the targets do not depend on the inputs",
             "raise training.learning_rate x3-x10 (carefully) and check the data (atlas inspect DATASET)"),
            (symptom[1], f"loss 几乎没有下降：开始 {start:.4g}，最低 {lowest:.4g}；学习率（{lr_text}）对该模型太小，"
             "或目标与输入无关", "将 training.learning_rate 提高 3-10 倍（小心），并检查数据（atlas inspect DATASET）"),
            LOSS_SOURCE_FALL + " (下降太慢：可以尝试增加学习率)")
    peak = records.plan.get("learning_rate")
    if isinstance(lr, (int, float)) and isinstance(peak, (int, float)) and lr <= DECAYED * peak:
        return finding(loss_not_falling, OK, measured,
                       (symptom[0], f"the loss flattens as the schedule's LR decays ({lr_text} of peak {peak:.3g})", "-"),
                       (symptom[1], f"loss 随学习率衰减而趋于平缓（{lr_text}，峰值 {peak:.3g}）", "-"), LOSS_SOURCE_FALL)
    return finding(
        loss_not_falling, WARN, measured,
        (symptom[0], f"the loss fell, then stalled by step {stall} at LR {lr_text}: converged, or the LR is too "
         "high to settle lower", "if val_loss / success are still poor: lower training.learning_rate (/2 or /10), "
         "raise training.warmup_steps, check the data"),
        (symptom[1], f"loss 下降后在第 {stall} 步停滞（学习率 {lr_text}）：已收敛，或学习率太大无法进一步下降",
         "若 val_loss / 成功率仍不理想：降低 training.learning_rate（除以2或10）、增加 training.warmup_steps、检查数据"),
        LOSS_SOURCE_FALL)


@run_rule
def loss_diverging(records: RunRecords, context: RunContext):
    """Loss oscillating or diverging: ❌ when the smoothed loss climbed more than RISE_SIGMAS x noise and
    RISE_FRACTION above its lowest earlier value (an upward trend); ⚠️ for window noise above OSCILLATION
    of the loss, or for steps skipped as non-finite (train.log). Seed 001 §3: loss震荡 → 降低学习率;
    seed 004: Loss震荡 → 降低学习率, 增加batch_size或gradient_accumulation_steps."""
    curve = loss_curve(records)
    symptom = ("loss oscillating or diverging", "loss 震荡或发散")
    skipped = [int(m.group(1)) for m in records.messages(r"non-finite loss/gradients at step (\d+)")]
    if len(curve.values) < MIN_WINDOWS and not skipped:
        return not_judged(loss_diverging, symptom, (f"fewer than {MIN_WINDOWS} training log lines",
                                                    f"训练日志行少于 {MIN_WINDOWS} 行"), LOSS_SOURCE_OSC)
    rose, rise, low, high = climbed(curve) if len(curve.values) >= MIN_WINDOWS else (False, 0.0, 0, 0)
    tail = curve.values[len(curve.values) // 2:] or [1.0]
    relative_noise = curve.noise / max(abs(statistics.fmean(tail)), 1e-12)
    measured = (f"largest climb {rise:.3g} (step {low}→{high}); window noise {relative_noise:.0%} of the loss; "
                f"{len(skipped)} non-finite step(s) skipped",
                f"最大上升 {rise:.3g}（第 {low}→{high} 步）；窗口噪声为 loss 的 {relative_noise:.0%}；"
                f"跳过 {len(skipped)} 个非有限步")
    change = ("lower training.learning_rate (/2 to /10) or raise training.warmup_steps; a larger effective batch "
              "(data.batch_size or training.gradient_accumulation_steps) steadies it")
    change_zh = ("降低 training.learning_rate（除以2到10）或增加 training.warmup_steps；"
                 "增大有效 batch（data.batch_size 或 training.gradient_accumulation_steps）可使其平稳")
    if rose:
        return finding(loss_diverging, FAIL, measured,
                       (symptom[0], f"the loss climbed from step {low} to {high}: the updates overshoot (LR too high "
                        f"for this model at LR {_lr_at(records, high) or '?'})", change),
                       (symptom[1], f"loss 在第 {low} 步到第 {high} 步之间上升：更新步长过大（学习率过高）", change_zh),
                       LOSS_SOURCE_OSC)
    if skipped or relative_noise > OSCILLATION:
        why = (f"{len(skipped)} step(s) had a non-finite loss or gradient (first at step {skipped[0]})" if skipped
               else f"the loss jumps by {relative_noise:.0%} between windows")
        why_zh = (f"{len(skipped)} 步出现非有限的 loss 或梯度（首次在第 {skipped[0]} 步）" if skipped
                  else f"loss 在日志窗口之间跳动 {relative_noise:.0%}")
        return finding(loss_diverging, WARN, measured, (symptom[0], why, change), (symptom[1], why_zh, change_zh),
                       LOSS_SOURCE_OSC)
    return finding(loss_diverging, OK, measured, (symptom[0], "no climb, no non-finite steps", "-"),
                   (symptom[1], "没有上升，没有非有限步", "-"), LOSS_SOURCE_OSC)


@run_rule
def grad_clipping(records: RunRecords, context: RunContext):
    """Grad-norm clipped in most steps: the logged grad_norm (before clipping, the window's mean) above
    training.max_grad_norm in more than CLIPPED_SHARE of the windows after the first. Clipping is for the
    rare spike (seed 001 §1: 避免梯度爆炸); when it acts in most steps the clip sets the step size."""
    symptom = ("grad norm clipped in most steps", "大多数步的梯度范数被裁剪")
    source = "seed 001 §1 (Warmup: 避免梯度爆炸)"
    clip = records.setting("training.max_grad_norm")
    norms = [float(r["grad_norm"]) for r in records.training_lines[1:] if isinstance(r.get("grad_norm"), (int, float))
             and r["grad_norm"] > 0]
    if not isinstance(clip, (int, float)) or not norms:
        missing = ("no clipping configured (training.max_grad_norm: null)", "未设置梯度裁剪") if norms else (
            "no grad_norm logged after the first window", "第一个窗口之后没有 grad_norm")
        return not_judged(grad_clipping, symptom, missing, source)
    above = sum(n > clip for n in norms)
    median = statistics.median(norms)
    measured = (f"grad_norm above max_grad_norm={clip:g} in {above} of {len(norms)} windows (median {median:.3g})",
                f"{len(norms)} 个窗口中有 {above} 个 grad_norm 超过 max_grad_norm={clip:g}（中位数 {median:.3g}）")
    if above / len(norms) <= CLIPPED_SHARE:
        return finding(grad_clipping, OK, measured, (symptom[0], "clipping only catches spikes", "-"),
                       (symptom[1], "裁剪只处理偶发尖峰", "-"), source)
    return finding(
        grad_clipping, WARN, measured,
        (symptom[0], "the clip, not the LR, sets the update size: the LR is too high for this model, or "
         "max_grad_norm is below the gradients' normal scale",
         f"if the loss is unstable lower training.learning_rate; else raise training.max_grad_norm to ~{median:.2g}"),
        (symptom[1], "更新幅度由裁剪而非学习率决定：学习率对该模型过高，或 max_grad_norm 低于梯度的正常量级",
         f"若 loss 不稳定则降低 training.learning_rate；否则将 training.max_grad_norm 提高到约 {median:.2g}"),
        source)
