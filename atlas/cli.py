"""The `atlas` command: parses arguments and dispatches; no logic of its own.

Each subcommand has one `_add_<name>` function declaring its flags (the DESIGN contract) and hands
the parsed arguments to the module that does the work. Config errors exit with code 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from atlas.config.errors import ConfigError
from atlas.data.errors import DataError
from atlas.errors import AtlasError


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a policy from a YAML config")
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", default=None, help="run folder (default runs/<config name>)")
    p.add_argument("--resume", default=None, help="auto (the run folder's latest checkpoint) or a checkpoint folder")
    p.add_argument("--profile", default=None, help="hardware profile: cpu, gpu_24gb, gpu_48gb, gpu_80gb, auto")
    p.add_argument("--init-from", "--init_from", dest="init_from", default=None,
                   help="initialise the weights from a trained policy (model.pretrained=PATH): run or checkpoint "
                   "folder, model.safetensors, or RDT's release folder")
    p.add_argument("--nproc", type=int, default=None, help="start this many processes with torchrun")
    # `python -m torch.distributed.launch` (seed 001's legacy form) passes --local-rank; LOCAL_RANK is read instead
    p.add_argument("--local-rank", "--local_rank", dest="local_rank", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides, e.g. training.max_steps=50")
    p.set_defaults(handler="atlas.train:command")


def _add_collect(sub) -> None:
    p = sub.add_parser("collect", help="collect demonstrations in simulation")
    p.add_argument("env", choices=["metaworld"], help="simulator")
    p.add_argument("--tasks", required=True, help="comma-separated task names, e.g. reach-v3,push-v3")
    p.add_argument("--episodes", type=int, required=True, help="successful episodes per task")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--image-size", "--image_size", dest="image_size", type=int, default=64)
    p.add_argument("--cameras", default="corner2", help="comma-separated camera names ('' for none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.set_defaults(handler="atlas.sim.commands:collect")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint in closed loop")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (or run folder: its best/latest)")
    p.add_argument("--env", default="metaworld")
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default: the training tasks)")
    p.add_argument("--episodes", type=int, default=50, help="episodes per task")
    p.add_argument("--exec-horizon", "--exec_horizon", dest="exec_horizon", type=int, default=None)
    p.add_argument("--max-steps", "--max_steps", dest="max_steps", type=int, default=None)
    p.add_argument("--record-video", "--record_video", dest="record_video", action="store_true")
    p.add_argument("--video-dir", "--video_output_dir", "--video-output-dir", dest="video_dir", default=None)
    p.add_argument("--weights", choices=["ema", "raw"], default="ema", help="EMA weights when present, or raw")
    p.add_argument("--workers", type=int, default=1, help="worker processes running episodes")
    p.add_argument("--seed", type=int, default=1000, help="first evaluation seed (disjoint from collection)")
    p.add_argument("--benchmark", default=None, help="LIBERO benchmark (with --env libero)")
    p.add_argument("--num-tasks", "--num_tasks", dest="num_tasks", type=int, default=None)
    p.add_argument("--out", default=None, help="eval.json path (default: beside the checkpoint)")
    p.add_argument("--device", default=None)
    p.set_defaults(handler="atlas.sim.commands:evaluate")


def _add_doctor(sub) -> None:
    p = sub.add_parser("doctor", help="check a config or launch script against known recipes")
    p.add_argument("target", help="Atlas YAML config or shell launch script")
    p.add_argument("--recipe", default=None)
    p.add_argument("--gpus", type=int, default=None)
    p.add_argument("--gpu-memory", "--gpu_memory", dest="gpu_memory", type=float, default=None, help="GB per GPU")
    p.add_argument("--cpus", type=int, default=None,
                   help="CPU cores of the training machine (for the loader-worker check; default: unknown)")
    p.add_argument("--model", default=None, help="model preset a launch script trains, when the doctor cannot tell")
    p.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    p.add_argument("--lang", choices=["en", "zh"], default="en")
    p.set_defaults(handler="atlas.planning.commands:doctor")


def _add_plan(sub) -> None:
    p = sub.add_parser("plan", help="fit a config to the hardware: micro-batch, accumulation, memory, time")
    p.add_argument("--config", required=True)
    p.add_argument("--gpus", type=int, default=None)
    p.add_argument("--gpu-memory", "--gpu_memory", dest="gpu_memory", type=float, default=None, help="GB per GPU")
    p.add_argument("--gpu", default=None, help="GPU name from the table (4090, A100-80, H100 ...)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--measure", action="store_true", help="time a few real steps and calibrate")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(handler="atlas.planning.commands:plan")


def _add_stats(sub) -> None:
    p = sub.add_parser("stats", help="normalization statistics of a dataset")
    p.add_argument("dataset", help="HDF5 file or folder")
    p.add_argument("--task", default=None)
    p.add_argument("--format", dest="data_format", default=None, help="data format (default: detected)")
    p.add_argument("--json", default=None, help="also write the statistics to this JSON file")
    p.set_defaults(handler="atlas.data.commands:stats")


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="plots and a summary of a run folder")
    p.add_argument("run_dir")
    p.set_defaults(handler="atlas.report.commands:report")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write a run's policy as a standalone checkpoint folder")
    p.add_argument("--merge-lora", "--merge_lora", dest="merge_lora", action="store_true", required=True,
                   help="fold the LoRA adapters into the base weights (a plain policy, no model.lora)")
    p.add_argument("run", help="run folder (its best, else latest checkpoint) or checkpoint folder")
    p.add_argument("out", help="output folder (config.json, normalization.json, model.safetensors [, ema/])")
    p.set_defaults(handler="atlas.models.export:command")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atlas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_collect, _add_eval, _add_doctor, _add_plan, _add_stats, _add_report,
                _add_export):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = args.handler.split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(handler(args) or 0)
    except (ConfigError, DataError) as err:
        print(f"atlas {args.command}: {err}", file=sys.stderr)
        return 2
    except AtlasError as err:
        print(f"atlas {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
