"""`atlas doctor`: compare a setup with a recipe, catch the known traps, judge memory with the planner,
and offer corrected settings.

Score rule (documented, printed with the result): start at 100, subtract 15 per ❌ and 5 per ⚠️, floor 0.
Exit code 1 when any ❌.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from typing import Any

from atlas.config.loader import load_config
from atlas.planning.hardware import GIB
from atlas.planning.launch import repair_continuations
from atlas.planning.launchers import get_launcher
from atlas.planning.launchers.base import quoted_precision
from atlas.planning.planner import PlanRequest, make_plan
from atlas.planning.probe import ModelProbe, probe_model
from atlas.planning.recipes import NO_RECIPE, Recipe, get_recipe, infer_recipe, recipe_for_tool
from atlas.planning.setup import Setup, setup_from_script

OK, WARN, FAIL = "ok", "warn", "fail"
ICON = {OK: "✅", WARN: "⚠️", FAIL: "❌"}
SCORE_RULE = "100 - 15 per ❌ - 5 per ⚠️ (floor 0)"
DEFAULT_SIZES = (24.0, 48.0, 80.0)
TIGHT = 0.90  # share of the budget above which a fit is called tight


@dataclass
class Finding:
    parameter: str
    recipe: str
    yours: str
    status: str
    why: str  # English; `why_zh` is the Chinese
    why_zh: str = ""


@dataclass
class MemoryVerdict:
    gpu_memory_gb: float
    micro_batch_size: int
    total_gb: float
    budget_gb: float
    status: str
    plan_micro_batch_size: int
    plan_accumulation: int
    plan_checkpointing: bool
    plan_efficient_attention: bool
    breakdown: dict
    strategy: str = "ddp"
    attention_kernel: str = ""
    plan_fits: bool = True  # the planner's own choice fits this GPU (False: not even micro-batch 1 does)


@dataclass
class Report:
    target: str
    recipe: str
    recipe_reason: str
    world_size: int
    world_size_origin: str
    arithmetic: str
    findings: list[Finding]
    memory: list[MemoryVerdict]
    options: list[dict]
    corrected: str
    unknown_flags: list[str]
    issues: list[str]
    score: int
    score_rule: str = SCORE_RULE
    parameters: dict = field(default_factory=dict)
    tool: str = "atlas"  # the launcher that read the command (atlas/planning/launchers)
    tool_label: str = "Atlas"
    run: dict = field(default_factory=dict)  # what the run really gets: batch per device / effective, LR, warmup

    @property
    def exit_code(self) -> int:
        return 1 if any(f.status == FAIL for f in self.findings) else 0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        return data


def score(findings: list[Finding]) -> int:
    fails = sum(f.status == FAIL for f in findings)
    warns = sum(f.status == WARN for f in findings)
    return max(0, 100 - 15 * fails - 5 * warns)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def check_batch(setup: Setup, recipe: Recipe) -> Finding:
    v = setup.values
    eff = setup.effective_batch_size
    want = recipe.value("effective_batch_size")
    status = OK if want is None or eff == want else WARN
    why = f"{v['micro_batch_size']} per device x {setup.world_size} processes x {v.get('gradient_accumulation_steps') or 1} accumulation"
    why_zh = f"每卡 {v['micro_batch_size']} × {setup.world_size} 进程 × 累积 {v.get('gradient_accumulation_steps') or 1}"
    note = setup.reading.batch_note if setup.reading is not None else ""
    if setup.kind == "script" and setup.world_size > 1 and note:
        given = v.get("global_batch_size", v["micro_batch_size"])
        why += f"; {note}, so the total is {eff}" + ("" if given == eff else f", not {given}")
        why_zh += f"；{note}，总量是 {eff}"
    return Finding("effective_batch_size", _fmt(want), str(eff), status, why, why_zh)


def check_schedule(setup: Setup, recipe: Recipe) -> list[Finding]:
    """The scheduler against the recipe, and the warmup the run really gets (a script's tool may ignore or
    rescale the one it is given: its launcher says so in `effective_warmup_steps` and a rule)."""
    v = setup.values
    sched, warm = v.get("lr_scheduler"), v.get("warmup_steps") or 0
    low, high = recipe.parameters.get("warmup_steps", {}).get("range", [None, None])
    out = []
    effective_warm = v.get("effective_warmup_steps", warm) if setup.kind == "script" else warm
    if not setup.covers("lr_scheduler"):
        want = recipe.value("lr_scheduler")
        same = want is None or sched == want or (want == "constant_with_warmup" and sched == "constant" and setup.kind == "yaml")
        out.append(Finding("lr_scheduler", _fmt(want), _fmt(sched), OK if same else WARN,
                           "as the recipe" if same else f"recipe uses {want} ({recipe.source('lr_scheduler')})",
                           "与配方一致" if same else f"配方使用 {want}"))
    if low is not None and effective_warm is not None:
        inside = low <= effective_warm <= high
        shown = f"{effective_warm}" + (f" (set {warm}, {v.get('warmup_note', 'ignored')})" if effective_warm != warm else "")
        out.append(Finding("warmup_steps", f"{low}-{high}" if low != high else f"{low}", shown, OK if inside else WARN,
                           "inside the recipe's range" if inside else
                           f"recipe: {low if low == high else f'{low}-{high}'} ({recipe.source('warmup_steps')})",
                           "在配方范围内" if inside else f"配方：{low if low == high else f'{low}-{high}'}"))
    return out


def check_value(setup: Setup, recipe: Recipe, key: str, tolerance: float | None = None) -> Finding | None:
    want, have = recipe.value(key), setup.values.get(key)
    if want is None:
        return None
    if isinstance(want, (int, float)) and not isinstance(want, bool) and isinstance(have, (int, float)):
        ratio = have / want if want else (1.0 if have == want else float("inf"))
        same = abs(ratio - 1) < 1e-9
        far = tolerance is not None and not (1 / tolerance <= ratio <= tolerance)
        status = OK if same else (FAIL if far else WARN)
    else:
        status = OK if have == want else WARN
    why = "as the recipe" if status == OK else f"recipe: {_fmt(want)} ({recipe.source(key)}); yours from {setup.origin.get(key, '?')}"
    why_zh = "与配方一致" if status == OK else f"配方：{_fmt(want)}；您的来自 {setup.origin.get(key, '?')}"
    return Finding(key, _fmt(want), _fmt(have), status, why, why_zh)


def check_workers(setup: Setup, cpu_cores: int | None) -> Finding:
    """Loader workers x processes against the cores of the machine the run is for (`--cpus N`): the machine
    the doctor runs on is usually not the training machine, so without --cpus the count is not judged."""
    workers = setup.values.get("num_workers") or 0
    processes = setup.values.get("processes", setup.world_size)  # openpi JAX: one process for every GPU
    total = workers * processes
    yours = f"{workers} x {processes}"
    if cpu_cores is None:
        return Finding("num_workers", "<= cores / processes - 1", yours, WARN,
                       f"{workers} workers x {processes} processes = {total} (+{processes} training processes); the "
                       "core count of the training machine is unknown: pass --cpus N to judge it",
                       f"{workers} 个 worker × {processes} 进程 = {total}；训练机器的 CPU 核数未知，请用 --cpus N 指定")
    status = OK if total + processes <= cpu_cores else WARN
    why = (f"{workers} workers x {processes} processes = {total} (+{processes} training processes) "
           f"vs {cpu_cores} CPU cores (--cpus)")
    return Finding("num_workers", "<= cores / processes - 1", yours, status, why,
                   f"{workers} 个 worker × {processes} 进程 = {total}，训练机器 CPU 核数 {cpu_cores}")


def check_disk(setup: Setup, probe: ModelProbe, path: str = ".") -> Finding:
    limit = setup.values.get("checkpoints_total_limit")
    strategy = setup.values.get("strategy", "ddp")
    trainable, frozen = probe.params.trainable, probe.params.frozen_bytes
    per_ckpt = 4 * trainable + 12 * trainable if strategy.startswith("zero") else 4 * trainable + 8 * trainable
    per_ckpt += frozen
    free = shutil.disk_usage(path).free
    if limit is None:
        return Finding("checkpoints_total_limit", "set a limit", "unlimited", WARN,
                       f"each checkpoint ~{per_ckpt / 1e9:.1f} GB (weights + optimizer); without a limit they pile up",
                       f"每个 checkpoint 约 {per_ckpt / 1e9:.1f} GB（权重+优化器），不设上限会占满磁盘")
    need = limit * per_ckpt
    status = OK if need < free else WARN
    return Finding("checkpoints_total_limit", _fmt(None), f"{limit} x {per_ckpt / 1e9:.1f} GB = {need / 1e9:.0f} GB", status,
                   f"weights + optimizer state per checkpoint; {free / 1e9:.0f} GB free here (check the training machine)",
                   f"每个 checkpoint 含权重+优化器状态；本机剩余 {free / 1e9:.0f} GB（请在训练机器上确认）")


def check_pretrained(cfg) -> list[Finding]:
    """model.pretrained: the checkpoint's tensor shapes against the config's model (models/pretrained.py)."""
    from atlas.planning.planner import pretrained_check

    checked = pretrained_check(cfg)
    if checked is None:
        return []
    verdict, message = checked
    status = {"match": OK, "unknown": WARN}.get(verdict, FAIL if cfg.model.pretrained_strict else WARN)
    return [Finding("model.pretrained", "the config's model shapes", verdict, status, message, message)]


def sdpa_default_for(setup: Setup, recipe: Recipe) -> bool | None:
    """A launch script runs the recipe's own code, whose attention dispatch the recipe states; a YAML runs Atlas."""
    if setup.kind == "script" and recipe.attention_dispatch == "default":
        return True
    return None


def memory_verdicts(setup: Setup, cfg, probe: ModelProbe, sizes: tuple[float, ...],
                    sdpa_default: bool | None = None) -> list[MemoryVerdict]:
    """The user's micro-batch judged on each GPU size, and the planner's own choice there."""
    out = []
    v = setup.values
    for size in sizes:
        common = {"effective_batch_size": setup.effective_batch_size, "mixed_precision": cfg.training.mixed_precision,
                  "strategy": v.get("strategy"), "probe": probe, "cpu_cores": 1, "sdpa_default": sdpa_default}
        pinned = make_plan(cfg, setup.world_size, size,
                           request=PlanRequest(micro_batch_size=v["micro_batch_size"], **common))
        free = make_plan(cfg, setup.world_size, size, request=PlanRequest(**common))
        used = pinned.memory.total / GIB
        status = FAIL if used > pinned.budget_gb else (WARN if used > TIGHT * pinned.budget_gb else OK)
        out.append(MemoryVerdict(size, v["micro_batch_size"], round(used, 2), round(pinned.budget_gb, 2), status,
                                 free.micro_batch_size, free.gradient_accumulation_steps, free.gradient_checkpointing,
                                 free.memory_efficient_attention, pinned.memory.to_dict(), pinned.strategy,
                                 pinned.notes[0], free.fits))
    return out


def atlas_config_for(setup: Setup, recipe: Recipe):
    """The config the planner measures: the YAML itself, or the model the command trains (its tool's reading,
    else the recipe's) with the script's numbers. None when the command's model has no planning shape."""
    if setup.cfg is not None:
        return setup.cfg
    v, reading = setup.values, setup.reading
    if reading is not None and reading.model:
        shapes = list(reading.planning) + [f"model.preset={reading.model}"]
    elif recipe.atlas and setup.tool == "rdt":
        shapes = list(recipe.atlas) + quoted_precision(v.get("mixed_precision"))
    else:
        return None
    eff = setup.effective_batch_size
    overrides = shapes + [
        f"data.batch_size={v['micro_batch_size']}", f"training.effective_batch_size={eff}",
        f"training.learning_rate={v.get('learning_rate') or 1e-4}",
    ]
    return load_config(None, overrides)


def build_options(setup: Setup, verdicts: list[MemoryVerdict]) -> list[dict]:
    """Keep / micro-batch + accumulation / a mix, each with the GPU sizes it fits."""
    v = setup.values
    per_process = setup.effective_batch_size // setup.world_size
    candidates = {(v["micro_batch_size"], per_process // v["micro_batch_size"])}
    for verdict in verdicts:
        candidates.add((verdict.plan_micro_batch_size, verdict.plan_accumulation))
    launcher = get_launcher(setup.tool) if setup.kind == "script" else None
    options = []
    for micro, accumulation in sorted(candidates, key=lambda c: -c[0]):
        if launcher is not None and not launcher.accumulation and accumulation > 1:
            continue  # the tool cannot accumulate (openpi): only a smaller batch or sharding helps
        fits_on = [f"{x.gpu_memory_gb:g} GB" for x in verdicts if micro <= _cap(x)]
        label = "keep" if micro == v["micro_batch_size"] else ("accumulate" if micro == min(c[0] for c in candidates) else "mix")
        option = {"name": label, "micro_batch_size": micro, "gradient_accumulation_steps": accumulation,
                  "effective_batch_size": micro * accumulation * setup.world_size, "fits": fits_on}
        if launcher is not None:
            flags = launcher.batch_flags(micro, accumulation, setup.world_size)
            option["flags"] = " ".join(f"--{k}={val}" for k, val in flags.items())
        options.append(option)
    return options


def _cap(verdict: MemoryVerdict) -> int:
    if not verdict.plan_fits:
        return 0
    if verdict.micro_batch_size > verdict.plan_micro_batch_size or verdict.status == FAIL:
        return verdict.plan_micro_batch_size
    return max(verdict.plan_micro_batch_size, verdict.micro_batch_size)


def corrected_command(setup: Setup, micro: int, accumulation: int) -> str:
    """The launch command with the traps fixed, one flag per line, no comments after backslashes."""
    if setup.launch is None:
        lines = [f"data.batch_size: {micro}", f"training.gradient_accumulation_steps: {accumulation}"]
        return "\n".join(lines)
    cmd = setup.launch.training
    args: dict[str, Any] = dict(cmd.args)
    for issue in setup.launch.issues:
        for flag in issue.dropped:
            key, _, value = flag.lstrip("-").partition("=")
            args.setdefault(key, value if value else True)
    launcher = get_launcher(setup.tool)
    if launcher.accumulation:  # a tool without accumulation keeps its batch: a smaller one would change the run
        args.update(launcher.batch_flags(micro, accumulation, setup.world_size))
    if setup.covers("lr_scheduler") and args.get("lr_scheduler") == "constant":
        args["lr_scheduler"] = "constant_with_warmup"
    if setup.covers("lr_scheduler") and args.get("lr_scheduler_type") == "constant":
        args["lr_scheduler_type"] = "constant_with_warmup"
    if setup.covers("scale_lr"):
        args.pop("scale_lr", None)
    head = {"accelerate": "accelerate launch", "torchrun": "torchrun", "deepspeed": "deepspeed", "python": "python"}[cmd.launcher]
    if cmd.launcher == "python" and not cmd.script.endswith(".py") and not cmd.script.startswith("-m "):
        head = ""  # the tool's own console command (lerobot-train)
    head = " ".join(part for part in (cmd.prefix, head) if part)
    parts = ([head] if head else []) + [f"--{k}" if v is True else f"--{k} {v}" for k, v in cmd.launcher_args.items()]
    parts.append(cmd.script)
    parts += cmd.positional[:1] if setup.tool in ("openpi-jax", "openpi-pytorch") else []
    parts += [f"--{k}" if v is True else f"--{k}={v}" for k, v in args.items()]
    return " \\\n    ".join(parts)


def choose_recipe(setup: Setup, recipe_name: str | None = None) -> tuple[Recipe, str]:
    """--recipe; else a tool's recipe by its own identifiers, exactly; RDT scripts and YAMLs by preset/flags/words."""
    if recipe_name:
        return get_recipe(recipe_name), "--recipe"
    if setup.kind == "script" and setup.tool not in ("rdt",):
        if setup.tool == "unknown":
            return NO_RECIPE, "the tool is not recognised"
        return recipe_for_tool(setup.tool, setup.reading.identifiers if setup.reading else {})
    preset = setup.cfg.model.preset if setup.cfg is not None else None
    flags = set(setup.launch.training.args) if setup.launch else set()
    return infer_recipe(preset, flags, setup.text)


def tool_findings(setup: Setup) -> list[Finding]:
    """The rules of the script's own tool, as findings (no other tool's rule can fire here)."""
    if setup.reading is None:
        return []
    return [Finding(r.parameter, r.recipe, r.yours, r.status, r.why, r.why_zh or r.why) for r in setup.reading.rules]


def script_findings(setup: Setup) -> tuple[list[Finding], list[str]]:
    """What any launch command shows: shell traps, processes vs visible GPUs, flags nobody reads."""
    findings: list[Finding] = []
    issues: list[str] = []
    if setup.launch is None:
        return findings, issues
    for issue in setup.launch.issues:
        issues.append(issue.message)
        if issue.kind in ("comment_after_backslash", "orphan_flags"):
            dropped = " ".join(issue.dropped)
            findings.append(Finding("script", "one command", f"line {issue.line}", FAIL, issue.message +
                                    (f": {dropped}" if dropped else ""),
                                    f"第 {issue.line} 行：反斜杠后面跟了注释，命令在此结束，之后的参数全部丢失" +
                                    (f"：{dropped}" if dropped else "")))
    cmd = setup.launch.training
    devices = cmd.visible_devices
    if devices is not None and cmd.world_size and len(devices) < cmd.world_size:
        findings.append(Finding("CUDA_VISIBLE_DEVICES", f"{cmd.world_size} devices", ",".join(devices), FAIL,
                                f"{cmd.world_size} processes but only {len(devices)} visible GPUs",
                                f"{cmd.world_size} 个进程但只有 {len(devices)} 张可见 GPU"))
    if setup.unknown_flags:
        issues.append("flags the doctor does not know (passed through unchecked): " + " ".join(setup.unknown_flags))
    return findings, issues


def setting_findings(setup: Setup, recipe: Recipe, cpu_cores: int | None) -> list[Finding]:
    """Batch, schedule and values against the recipe, and data workers against the cores."""
    if setup.tool == "unknown":
        cmd = setup.launch.training
        return [Finding("tool", "-", cmd.script or "?", WARN,
                        "not a command the doctor knows (LeRobot, openpi, OpenVLA-OFT, HF Trainer, RDT main.py, Atlas): "
                        "its flags are not read with any tool's meaning; only the launcher, processes and environment "
                        "are judged", "无法识别的训练脚本：只检查启动器、进程数和环境变量"),
                Finding("processes", "-", str(setup.world_size), OK, f"{setup.world_size_origin}", "")]
    findings = [check_batch(setup, recipe), *check_schedule(setup, recipe), *tool_findings(setup)]
    for key, tol in (("learning_rate", 10.0), ("mixed_precision", None), ("sampling", None), ("state_noise_snr", None),
                     ("image_aug", None), ("max_steps", None), ("strategy", None), ("ema", None), ("lora_rank", None)):
        finding = check_value(setup, recipe, key, tol)
        if finding:
            findings.append(finding)
    findings.append(check_workers(setup, cpu_cores))
    return findings


def memory_findings(setup: Setup, verdicts: list[MemoryVerdict]) -> list[Finding]:
    out = []
    for verdict in verdicts:
        fix = f"micro-batch {verdict.plan_micro_batch_size} x accumulation {verdict.plan_accumulation}" \
            if verdict.plan_fits else "does not fit even at micro-batch 1 (shard: FSDP/ZeRO, LoRA, or a larger GPU)"
        out.append(Finding(f"memory @ {verdict.gpu_memory_gb:g} GB", f"<= {verdict.budget_gb:g} GB",
                           f"{verdict.total_gb:g} GB", verdict.status,
                           f"micro-batch {verdict.micro_batch_size} needs {verdict.total_gb:g} GB of {verdict.budget_gb:g} GB usable"
                           f" under {verdict.strategy} ({setup.origin.get('strategy', 'config')})"
                           + ("" if verdict.status == OK else f"; planner: {fix}"),
                           f"每卡 {verdict.micro_batch_size} 需要 {verdict.total_gb:g} GB（可用 {verdict.budget_gb:g} GB）"
                           + ("" if verdict.status == OK else f"；建议：每卡 {verdict.plan_micro_batch_size} × 累积 {verdict.plan_accumulation}")))
    return out


def batch_arithmetic(setup: Setup) -> str:
    v = setup.values
    if setup.effective_batch_size is None:
        return "effective batch: unknown (the tool is not recognised, so no flag is read as its batch size)"
    given = f"global {v['global_batch_size']} / {setup.world_size} devices = " if "global_batch_size" in v else ""
    return (f"effective batch = {given}{v['micro_batch_size']} (per device, {setup.origin.get('micro_batch_size')}) x "
            f"{setup.world_size} processes ({setup.world_size_origin}) x {v.get('gradient_accumulation_steps') or 1} "
            f"accumulation ({setup.origin.get('gradient_accumulation_steps', 'default')}) = {setup.effective_batch_size}")


def model_summary(setup: Setup, cfg, probe: ModelProbe | None) -> dict:
    origin = setup.reading.model_origin if setup.reading is not None else "config"
    if probe is None:
        return {"preset": None, "origin": origin or "no model known", "total": 0, "trainable": 0, "frozen": 0}
    p = probe.params
    return {"preset": cfg.model.preset, "origin": origin or f"model.preset={cfg.model.preset}", "total": p.total,
            "trainable": p.trainable, "frozen": p.frozen}


def run_summary(setup: Setup) -> dict:
    """The numbers the run really gets, in the tool's own reading (None where the command does not say)."""
    v = setup.values
    warm = v.get("warmup_steps")
    return {"micro_batch_size": v.get("micro_batch_size"), "effective_batch_size": setup.effective_batch_size,
            "world_size": setup.world_size, "gradient_accumulation_steps": v.get("gradient_accumulation_steps"),
            "learning_rate": v.get("learning_rate"), "lr_scheduler": v.get("lr_scheduler"), "warmup_steps_set": warm,
            "warmup_steps_real": v.get("effective_warmup_steps", warm) if setup.kind == "script" else warm,
            "max_steps": v.get("max_steps")}


def run_doctor(setup: Setup, recipe_name: str | None = None, gpu_memory_gb: float | None = None,
               cpu_cores: int | None = None, probe: ModelProbe | None = None, model: str | None = None) -> Report:
    """`cpu_cores`: the training machine's (`--cpus`; None: not judged). `model`: the preset a launch script
    trains (`--model`), for a command whose model the doctor cannot read."""
    recipe, reason = choose_recipe(setup, recipe_name)
    cfg = atlas_config_for(setup, recipe)
    if model is not None and setup.cfg is None and setup.effective_batch_size is not None:
        base = cfg if cfg is not None else load_config(None, [f"data.batch_size={setup.values['micro_batch_size']}"])
        cfg = base.model_copy(update={"model": load_config(None, [f"model.preset={model}"]).model})
    probe = probe or (probe_model(cfg) if cfg is not None else None)
    findings = setting_findings(setup, recipe, cpu_cores)
    if probe is not None and not setup.covers("checkpoints_total_limit"):
        findings.append(check_disk(setup, probe))
    if cfg is not None:
        findings += check_pretrained(cfg)
    shell, issues = script_findings(setup)
    findings += shell
    sizes = (gpu_memory_gb,) if gpu_memory_gb else DEFAULT_SIZES
    sdpa_default = sdpa_default_for(setup, recipe)
    verdicts = memory_verdicts(setup, cfg, probe, sizes, sdpa_default) if probe is not None else []
    findings += memory_findings(setup, verdicts)
    if probe is None and setup.tool != "unknown":
        findings.append(Finding("memory", "-", "not planned", WARN,
                                f"{model_summary(setup, cfg, probe)['origin']}: memory is not judged",
                                "模型未知：不评估显存"))
    intended, verdicts_for_options = setup, verdicts
    if setup.launch is not None and any(i.kind == "comment_after_backslash" for i in setup.launch.issues):
        intended = setup_from_script(repair_continuations(setup.text), setup.world_size)
        if intended.effective_batch_size != setup.effective_batch_size and probe is not None:
            verdicts_for_options = memory_verdicts(intended, atlas_config_for(intended, recipe), probe, sizes, sdpa_default)
    options = build_options(intended, verdicts_for_options) if verdicts_for_options else []
    if "micro_batch_size" in intended.values:
        micro, accumulation = intended.values["micro_batch_size"], intended.values.get("gradient_accumulation_steps") or 1
        if verdicts_for_options:
            smallest = min(verdicts_for_options, key=lambda x: x.gpu_memory_gb)
            if smallest.status != OK:
                micro, accumulation = smallest.plan_micro_batch_size, smallest.plan_accumulation
        corrected = corrected_command(intended, micro, accumulation)
    else:
        corrected = repair_continuations(setup.text).strip()
    return Report(setup.launch and "script" or "yaml", recipe.name, reason, setup.world_size, setup.world_size_origin,
                  batch_arithmetic(setup), findings, verdicts, options, corrected, setup.unknown_flags, issues,
                  score(findings), parameters=model_summary(setup, cfg, probe), tool=setup.tool,
                  tool_label=setup.tool_label, run=run_summary(setup))
