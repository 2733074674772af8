"""`atlas plan` and `atlas doctor`: read arguments, call the run plan / doctor, print."""

from __future__ import annotations

import argparse

from atlas.config.loader import load_config
from atlas.planning.doctor import run_doctor
from atlas.planning.hardware import find_gpu
from atlas.planning.render import render_plan, render_report
from atlas.planning.run_plan import Hardware, resolve_run_plan
from atlas.planning.setup import read_setup

DEFAULT_PLAN_GPU_GB = 80.0  # `atlas plan` without --gpu/--gpu-memory plans for an 80 GB GPU


def plan(args: argparse.Namespace) -> int:
    """The run `atlas train` would do with this config on this hardware (exit 1 if it will not fit), and
    what the planner would change in a separate `suggested` block."""
    cfg = load_config(args.config, list(args.overrides or []))
    if args.gpu:
        try:
            find_gpu(args.gpu)
        except KeyError as err:
            print(f"atlas plan: {err.args[0]}")
            return 2
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


def doctor(args: argparse.Namespace) -> int:
    setup = read_setup(args.target, args.gpus)
    report = run_doctor(setup, args.recipe, args.gpu_memory, cpu_cores=getattr(args, "cpus", None),
                        model=getattr(args, "model", None))
    print(render_report(report, args.format, getattr(args, "lang", "en")))
    return report.exit_code
