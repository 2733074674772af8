"""Rules on where the wall time went, from the loop's per-phase timers (atlas/engine/timers.py):
validation, in-training evaluation, checkpointing, and waiting for data."""

from __future__ import annotations

import contextlib
import json
import math
import statistics

from atlas.planning.run_doctor.findings import FAIL, OK, WARN, RunContext, finding, not_judged, run_rule
from atlas.planning.run_doctor.records import RunRecords

SHARE_WARN = 0.10  # a pause that takes a tenth of the run: doing it less often buys back that tenth
SHARE_FAIL = 0.25  # a quarter of the machine time not training
TARGET_SHARE = 0.05  # the share the suggested interval brings a pause down to
WAIT_WARN = 0.30  # data wait above 30 % of the step: the accelerator idles a third of the time
WAIT_FAIL = 0.50  # waiting for data longer than computing: the input pipeline sets the speed


def seed001_val_interval(samples: int) -> int:
    """Seed 001 §4 (根据数据集大小): <10k samples 500, 10k-100k 1000, >100k 2000 (seed 004: 2000-5000)."""
    return 500 if samples < 10_000 else (1000 if samples <= 100_000 else 2000)


def _checkpoint_saves(records: RunRecords) -> tuple[int, int]:
    """(saves after validation found a new best, all saves) from train.log."""
    saves = records.messages(r"^checkpoint \S+( \(best\))?$")
    return sum(1 for m in saves if m.group(1)), len(saves)


def _periodic_saves(records: RunRecords) -> int:
    """Saves made for checkpoint_interval alone: not a best checkpoint (validation's) and not a segment's
    last step (saved at the end or at a stop, whatever the interval)."""
    finals = set()
    for done in records.messages(r"^done: (\{.*\})$"):
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            finals.add(json.loads(done.group(1)).get("final_step"))
    saves = records.messages(r"^checkpoint \S*?(\d+)( \(best\))?$")
    return sum(1 for m in saves if not m.group(2) and int(m.group(1)) not in finals)


def _wall(phases: dict[str, float]) -> float:
    return sum(phases.get(k, 0.0) for k in ("step", "validation", "evaluation", "checkpoint"))


def _grade(share: float) -> str:
    return FAIL if share > SHARE_FAIL else (WARN if share > SHARE_WARN else OK)


def _interval_for(pause_s: float, count: int, step_s: float) -> int:
    """The interval at which `count` pauses of `pause_s` seconds in total cost TARGET_SHARE of training."""
    return max(1, math.ceil(pause_s / max(count, 1) / (TARGET_SHARE * max(step_s, 1e-9))))


def _recurring(count: int, records: RunRecords) -> int:
    """Pauses that come back with the interval: a finished run's last one (at the final step, run whatever
    the interval) is not counted."""
    return max(0, count - (1 if records.summary is not None else 0))


@run_rule
def validation_cost(records: RunRecords, context: RunContext):
    """Validation's share of wall time (its own timer plus the best-checkpoint saves it triggers; the final
    validation, run whatever the interval, left out) against SHARE_WARN / SHARE_FAIL, with
    training.val_interval against seed 001 §4's rule of thumb for the dataset's size. Seed 004: 验证太慢 →
    增加val_interval; seed 001: 验证会暂停训练. The measured share decides: the rule of thumb exists because
    validation costs time, so a cheap validation is not flagged for its interval alone."""
    symptom = ("validation takes a large share of wall time", "验证占用大量训练时间")
    source = "seed 001 §4 验证频率; seed 004 常见问题速查: 验证太慢"
    phases, interval = records.phase_seconds(), records.setting("training.val_interval", 0)
    wall = _wall(phases)
    count = len(records.messages(r"^step \d+: val_loss "))
    if not interval or wall <= 0 or not count:
        return not_judged(validation_cost, symptom, ("no validation or no phase times logged",
                                                     "没有验证或没有阶段计时"), source)
    best, saves = _checkpoint_saves(records)
    each = (phases.get("validation", 0.0) + (phases.get("checkpoint", 0.0) * best / saves if saves else 0.0)) / count
    recurring = _recurring(count, records)
    share = each * recurring / wall
    samples = records.plan.get("samples_per_epoch") or 0
    thumb = seed001_val_interval(samples)
    step_s = phases.get("step", 0.0) / (records.run.last_step or 1)
    suggested = max(_interval_for(each, 1, step_s), interval + 1)
    measured = (f"{share:.0%} of {wall:.3g} s ({recurring} validation(s) before the final one, {each:.3g} s each "
                f"with {best} best-checkpoint save(s) in all); val_interval={interval}, seed 001 for {samples} "
                f"samples: {thumb}",
                f"占 {wall:.3g} 秒的 {share:.0%}（最后一次之前验证 {recurring} 次，每次 {each:.3g} 秒，共保存最佳 checkpoint "
                f"{best} 次）；val_interval={interval}，seed 001 对 {samples} 个样本建议 {thumb}")
    status = _grade(share)
    if status == OK:
        return finding(validation_cost, OK, measured, (symptom[0], "validation is cheap at this interval", "-"),
                       (symptom[1], "在该间隔下验证开销很小", "-"), source)
    return finding(
        validation_cost, status, measured,
        (symptom[0], f"validating every {interval} step(s) pauses training {each:.3g} s each time (with the best "
         "checkpoint it saves)",
         f"raise training.val_interval to >= {suggested} (brings it to ~{TARGET_SHARE:.0%}); seed 001 suggests "
         f"{thumb} for this dataset; or cap training.val_batches"),
        (symptom[1], f"每 {interval} 步验证一次，每次暂停训练 {each:.3g} 秒（含保存的最佳 checkpoint）",
         f"将 training.val_interval 提高到 >= {suggested}（约占 {TARGET_SHARE:.0%}）；seed 001 对该数据量建议 {thumb}；"
         "或设置 training.val_batches"),
        source)


@run_rule
def evaluation_cost(records: RunRecords, context: RunContext):
    """In-training closed-loop evaluation's share of wall time against SHARE_WARN / SHARE_FAIL: rollouts
    pause training like validation does (seed 004: 验证太慢 → 增加val_interval, applied to
    eval.every_n_steps)."""
    symptom = ("in-training evaluation takes a large share of wall time", "训练中评估占用大量时间")
    source = "seed 004 常见问题速查: 验证太慢 (applied to eval.every_n_steps)"
    phases, every = records.phase_seconds(), records.setting("eval.every_n_steps", 0)
    wall = _wall(phases)
    if not every or wall <= 0:
        return not_judged(evaluation_cost, symptom, ("no in-training evaluation (eval.every_n_steps: 0)",
                                                     "未开启训练中评估（eval.every_n_steps: 0）"), source)
    count = len(records.messages(r"^step \d+: success_rate "))
    each = phases.get("evaluation", 0.0) / max(count, 1)
    recurring = _recurring(count, records)
    share = each * recurring / wall
    suggested = max(_interval_for(each, 1, phases.get("step", 0.0) / (records.run.last_step or 1)), every + 1)
    measured = (f"{share:.0%} of {wall:.3g} s ({recurring} evaluation(s) before the final one, {each:.3g} s each); "
                f"eval.every_n_steps={every}",
                f"占 {wall:.3g} 秒的 {share:.0%}（最后一次之前评估 {recurring} 次，每次 {each:.3g} 秒）；"
                f"eval.every_n_steps={every}")
    status = _grade(share)
    if status == OK:
        return finding(evaluation_cost, OK, measured, (symptom[0], "evaluation is cheap at this interval", "-"),
                       (symptom[1], "在该间隔下评估开销很小", "-"), source)
    return finding(evaluation_cost, status, measured,
                   (symptom[0], f"rollouts every {every} steps pause training",
                    f"raise eval.every_n_steps to >= {suggested}, or lower eval.episodes; evaluate checkpoints "
                    "afterwards with atlas eval"),
                   (symptom[1], f"每 {every} 步一次的仿真评估会暂停训练",
                    f"将 eval.every_n_steps 提高到 >= {suggested}，或减少 eval.episodes；训练后用 atlas eval 评估"),
                   source)


@run_rule
def checkpoint_cost(records: RunRecords, context: RunContext):
    """Checkpointing's share of wall time, counting the periodic saves only (best-checkpoint saves are
    validation's, the one final save is unavoidable), against SHARE_WARN / SHARE_FAIL. Seed 000's recipe
    saves every 2000 of 100000 steps (checkpointing_period=2000): a save is meant to be rare."""
    symptom = ("checkpointing takes a large share of wall time", "保存 checkpoint 占用大量时间")
    source = "seed 000 (checkpointing_period=2000 of max_train_steps=100000)"
    phases = records.phase_seconds()
    wall = _wall(phases)
    _, saves = _checkpoint_saves(records)
    if wall <= 0 or not saves:
        return not_judged(checkpoint_cost, symptom, ("no checkpoint saves or phase times logged",
                                                     "没有 checkpoint 保存记录或阶段计时"), source)
    periodic = _periodic_saves(records)
    per_save = phases.get("checkpoint", 0.0) / saves
    share = per_save * periodic / wall
    interval = records.setting("training.checkpoint_interval", 0)
    suggested = max(_interval_for(per_save * periodic, periodic,
                                  phases.get("step", 0.0) / (records.run.last_step or 1)), interval + 1)
    measured = (f"{share:.0%} of {wall:.3g} s ({periodic} periodic save(s) of {saves}, {per_save:.3g} s each); "
                f"checkpoint_interval={interval}",
                f"占 {wall:.3g} 秒的 {share:.0%}（{saves} 次保存中定期保存 {periodic} 次，每次 {per_save:.3g} 秒）；"
                f"checkpoint_interval={interval}")
    status = _grade(share)
    if status == OK:
        return finding(checkpoint_cost, OK, measured, (symptom[0], "saves are rare enough", "-"),
                       (symptom[1], "保存频率合适", "-"), source)
    return finding(checkpoint_cost, status, measured,
                   (symptom[0], f"a save every {interval} steps pauses training {per_save:.3g} s each time",
                    f"raise training.checkpoint_interval to >= {suggested}, or set training.async_checkpoint=true"),
                   (symptom[1], f"每 {interval} 步保存一次，每次暂停训练 {per_save:.3g} 秒",
                    f"将 training.checkpoint_interval 提高到 >= {suggested}，或设置 training.async_checkpoint=true"),
                   source)


def data_wait_shares(records: RunRecords) -> dict[str, float]:
    """Each rank's data wait as a share of its step: the median over the log windows (a warm-up window, or
    the first one after a resume, does not move it). `rank0` alone when per-rank times were not logged
    (one process, or a run from before they were)."""
    lines = records.training_lines
    ranks = sorted({k.rsplit("/", 1)[1] for r in lines for k in r if k.startswith("time/data_wait_ms/rank")})
    keys = {rank: (f"time/data_wait_ms/{rank}", f"time/step_ms/{rank}") for rank in ranks} or {
        "rank0": ("time/data_wait_ms", "time/step_ms")}
    out = {}
    for rank, (wait, step) in keys.items():
        shares = [r[wait] / r[step] for r in lines if isinstance(r.get(wait), (int, float))
                  and isinstance(r.get(step), (int, float)) and r[step] > 0]
        if shares:
            out[rank] = statistics.median(shares)
    return out


@run_rule
def input_bound(records: RunRecords, context: RunContext):
    """Input-bound steps: the data wait's share of the step (median over the log windows) on the rank that
    waits least (input-bound means every rank starves; one slow rank is `rank_imbalance`'s), against
    WAIT_WARN / WAIT_FAIL. Seed 002 Q2: 数据加载是否是瓶颈 → 增加dataloader_num_workers; seed 003:
    num_workers 8 (24 GB) / 16 (48 GB). A healthy 0-worker run of the in-memory synthetic format stays
    under WAIT_WARN (benchmarks/RESULTS.md, "run doctor")."""
    symptom = ("steps wait for data (input-bound)", "训练步在等待数据（数据加载瓶颈）")
    source = "seed 002 Q2 (数据加载是否是瓶颈); seed 003 num_workers"
    shares = data_wait_shares(records)
    if not shares:
        return not_judged(input_bound, symptom, ("no phase times logged", "没有阶段计时"), source)
    rank, share = min(shares.items(), key=lambda item: item[1])
    workers = int(records.setting("data_loading.num_workers", 0) or 0)
    # loading a step's batch takes L, computing it C. In the main process the wait is L, so L / C = s / (1 - s);
    # with k workers it is L / k - C, so L / C = k / (1 - s). n workers keep up when n >= L / C (+1 spare).
    idle = max(1.0 - share, 0.01)
    ratio = workers / idle if workers else share / idle
    needed = math.ceil(ratio) + 1
    measured = (f"data wait {share:.0%} of the step ({rank}); data_loading.num_workers={workers}",
                f"数据等待占步时的 {share:.0%}（{rank}）；data_loading.num_workers={workers}")
    if share <= WAIT_WARN:
        return finding(input_bound, OK, measured, (symptom[0], "the input keeps up", "-"),
                       (symptom[1], "数据加载跟得上", "-"), source)
    return finding(input_bound, FAIL if share > WAIT_FAIL else WARN, measured,
                   (symptom[0], f"the loader ({workers} workers) delivers batches slower than the model uses them",
                    f"set data_loading.num_workers={needed} (at most CPU cores / processes - 1); "
                    "data_loading.preload_data=true for data that fits in memory"),
                   (symptom[1], f"数据加载（{workers} 个 worker）跟不上模型的计算速度",
                    f"设置 data_loading.num_workers={needed}（不超过 CPU 核数/进程数 - 1）；"
                    "数据能放进内存时设置 data_loading.preload_data=true"),
                   source)
