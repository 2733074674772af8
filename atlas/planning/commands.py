"""`atlas plan` and `atlas doctor`: read arguments, call the run plan / doctor, print.

The planner and doctor (and torch with them) are imported inside the commands, after the cheap check of
the target file, so that a wrong path or an unreadable file is reported in a fraction of a second.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from atlas.config.errors import ConfigError
from atlas.config.loader import load_config

DEFAULT_PLAN_GPU_GB = 80.0  # `atlas plan` without --gpu/--gpu-memory plans for an 80 GB GPU


def plan(args: argparse.Namespace) -> int:
    """The run `atlas train` would do with this config on this hardware (exit 1 if it will not fit), and
    what the planner would change in a separate `suggested` block."""
    from atlas.planning.hardware import find_gpu
    from atlas.planning.render import render_plan
    from atlas.planning.run_plan import Hardware, resolve_run_plan

    cfg = load_config(args.config, list(args.overrides or []))
    if args.gpu:
        find_gpu(args.gpu)  # an unknown name is a ConfigError: one line naming it and the known GPUs, exit 2
    memory = args.gpu_memory if (args.gpu_memory or args.gpu) else DEFAULT_PLAN_GPU_GB
    hardware = Hardware(world_size=args.gpus or 1, gpu_memory_gb=memory, gpu=args.gpu,
                        cpu_cores=getattr(args, "cpus", None))
    run = resolve_run_plan(cfg, hardware)
    planned = run.planned
    if getattr(args, "measure", False):
        from atlas.planning.measure import calibrate

        planned = calibrate(cfg, planned)
    print(render_plan(run, planned, args.format))
    return 0 if planned.fits else 1


def _syntax_hint(text: str) -> str:
    """The first line bash could not read either (an unbalanced quote ...), the likely cause of a refusal."""
    from atlas.planning.launch import parse_launch_script

    try:
        issues = [i for i in parse_launch_script(text).issues if i.kind == "syntax"]
    except ValueError:
        return ""
    return f"; {issues[0].message}" if issues else ""


def doctor(args: argparse.Namespace) -> int:
    if Path(args.target).is_dir():  # a run folder: diagnose what it logged (atlas/planning/run_doctor/)
        from atlas.planning.run_doctor.command import run_folder_doctor

        return run_folder_doctor(args)
    from atlas.textfile import read_text_file

    # a bounded, checked read first: a folder, /dev/zero, a 3 GB or binary or non-UTF-8 file is one message
    text = read_text_file(args.target, "config or launch script")
    from atlas.planning.doctor import run_doctor
    from atlas.planning.render import render_report
    from atlas.planning.setup import read_setup

    try:
        setup = read_setup(args.target, args.gpus)
    except ConfigError:
        raise
    except ValueError as err:  # the launch-script reader's own refusals (no launch command ...), said with the file
        raise ConfigError(f"{args.target}: {err}{_syntax_hint(text)}") from None
    report = run_doctor(setup, args.recipe, args.gpu_memory, cpu_cores=getattr(args, "cpus", None),
                        model=getattr(args, "model", None))
    print(render_report(report, args.format, getattr(args, "lang", "en")))
    return report.exit_code
