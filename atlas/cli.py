"""The `atlas` command: parses arguments and dispatches; no logic of its own.

Each subcommand has one `_add_<name>` function declaring its flags (the DESIGN contract) and hands
the parsed arguments to the module that does the work. Config errors exit with code 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys

from atlas.config.errors import ConfigError
from atlas.data.errors import DataError
from atlas.errors import AtlasError


def _int_in(low: int, high: int = 2**31 - 1):
    """An argparse type: an integer in [low, high], refused at the parser (argparse names the flag)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; expected {low} to {high}")
        return value

    parse.__name__ = "integer"
    return parse


def _positive_gb(text: str) -> float:
    """`--gpu-memory`: a finite number of GB above 0 (nan, inf, -1 would give negative or empty plans)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GB") from None
    if not math.isfinite(value) or value <= 0 or value > 100_000:
        raise argparse.ArgumentTypeError(f"{text} GB is not a memory size; expected a number above 0 (e.g. 80)")
    return value


POSITIVE = _int_in(1)
SEED = _int_in(0, 2**31 - 1)
GPUS = _int_in(1, 65536)
WORKERS = _int_in(1, 256)
IMAGE_SIZE = _int_in(8, 1024)  # MuJoCo renders at least a few pixels; a 1024 px frame is 3 MB


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a policy from a YAML config")
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", default=None, help="run folder (default runs/<config name>)")
    p.add_argument("--resume", default=None, help="auto (the run folder's latest checkpoint) or a checkpoint folder")
    p.add_argument("--profile", default=None, help="hardware profile: cpu, gpu_24gb, gpu_48gb, gpu_80gb, auto")
    p.add_argument("--init-from", "--init_from", dest="init_from", default=None,
                   help="initialise the weights from a trained policy (model.pretrained=PATH): run or checkpoint "
                   "folder, model.safetensors, or RDT's release folder")
    p.add_argument("--nproc", type=GPUS, default=None, help="start this many processes with torchrun")
    # `python -m torch.distributed.launch` (seed 001's legacy form) passes --local-rank; LOCAL_RANK is read instead
    p.add_argument("--local-rank", "--local_rank", dest="local_rank", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides, e.g. training.max_steps=50")
    p.set_defaults(handler="atlas.train:command")


def _add_collect(sub) -> None:
    p = sub.add_parser("collect", help="collect demonstrations in simulation")
    p.add_argument("env", choices=["metaworld"], help="simulator")
    p.add_argument("--tasks", required=True, help="comma-separated task names, e.g. reach-v3,push-v3")
    p.add_argument("--episodes", type=POSITIVE, required=True, help="successful episodes per task")
    p.add_argument("--out", required=True, help="output HDF5 file (robomimic) or folder (lerobot); refused if it "
                   "exists, unless --overwrite or --append")
    p.add_argument("--format", dest="out_format", choices=["robomimic", "lerobot"], default="robomimic",
                   help="robomimic HDF5 (default) or a LeRobot v3.0 dataset folder")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace an existing --out (at the end, once collection succeeded)")
    mode.add_argument("--append", action="store_true", help="add the new episodes to an existing --out file")
    p.add_argument("--image-size", "--image_size", dest="image_size", type=IMAGE_SIZE, default=64)
    p.add_argument("--cameras", default="corner2", help="comma-separated camera names ('' for none)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--workers", type=WORKERS, default=1, help="worker processes")
    p.set_defaults(handler="atlas.sim.commands:collect")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint in closed loop")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (or run folder: its best/latest)")
    p.add_argument("--env", default=None, help="metaworld or libero (default: the run's eval.env, else metaworld)")
    p.add_argument("--tasks", default=None,
                   help="comma-separated tasks (default: the training tasks); LIBERO: indices or names in --benchmark")
    p.add_argument("--episodes", type=POSITIVE, default=50, help="episodes per task (50, as the papers report)")
    p.add_argument("--exec-horizon", "--exec_horizon", dest="exec_horizon", type=POSITIVE, default=None)
    p.add_argument("--max-steps", "--max_steps", dest="max_steps", type=POSITIVE, default=None,
                   help="step limit per episode (default: the env's: Meta-World 500, LIBERO the suite's)")
    p.add_argument("--record-video", "--record_video", dest="record_video", action="store_true")
    p.add_argument("--video-dir", "--video_output_dir", "--video-output-dir", dest="video_dir", default=None)
    p.add_argument("--weights", choices=["ema", "raw"], default="ema", help="EMA weights when present, or raw")
    p.add_argument("--workers", type=WORKERS, default=1, help="worker processes running episodes")
    p.add_argument("--seed", type=SEED, default=1000, help="first evaluation seed (disjoint from collection)")
    p.add_argument("--benchmark", "--suite", dest="benchmark", default=None,
                   help="LIBERO suite with --env libero: libero_spatial, libero_object, libero_goal, libero_10, libero_90")
    p.add_argument("--num-tasks", "--num_tasks", dest="num_tasks", type=POSITIVE, default=None,
                   help="the first N tasks (of --benchmark, or of --tasks)")
    p.add_argument("--dataset", default=None, help="mixture-trained policy: whose statistics (data.mixture name; "
                   "default the first)")
    p.add_argument("--out", default=None, help="eval.json path (default: beside the checkpoint)")
    p.add_argument("--device", default=None)
    p.set_defaults(handler="atlas.sim.commands:evaluate")


def _add_doctor(sub) -> None:
    p = sub.add_parser("doctor", help="check a config or launch script against known recipes, or diagnose a run folder")
    p.add_argument("target", help="Atlas YAML config, shell launch script, or run folder (atlas train --output-dir)")
    p.add_argument("--recipe", default=None)
    p.add_argument("--gpus", type=GPUS, default=None)
    p.add_argument("--gpu-memory", "--gpu_memory", dest="gpu_memory", type=_positive_gb, default=None, help="GB per GPU")
    p.add_argument("--cpus", type=GPUS, default=None,
                   help="CPU cores of the training machine (for the loader-worker check; default: unknown)")
    p.add_argument("--model", default=None, help="model preset a launch script trains, when the doctor cannot tell")
    p.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    p.add_argument("--lang", choices=["en", "zh"], default="en")
    p.add_argument("--baseline", default=None,
                   help="with a run folder: a run of the same config on fewer processes, to judge the speed-up")
    p.set_defaults(handler="atlas.planning.commands:doctor")


def _add_plan(sub) -> None:
    p = sub.add_parser("plan", help="fit a config to the hardware: micro-batch, accumulation, memory, time")
    p.add_argument("--config", required=True)
    p.add_argument("--gpus", type=GPUS, default=None)
    p.add_argument("--gpu-memory", "--gpu_memory", dest="gpu_memory", type=_positive_gb, default=None, help="GB per GPU")
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


def _add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="what the loader feeds the model for given samples, before normalization")
    p.add_argument("dataset", help="HDF5 file or folder, or LeRobot dataset folder")
    p.add_argument("--format", dest="data_format", default=None, help="data format (default: detected)")
    p.add_argument("--index", type=int, nargs="+", default=None, help="global sample indices (default 0)")
    p.add_argument("--obs-horizon", "--obs_horizon", dest="obs_horizon", type=int, default=None,
                   help="frames of history (default data.obs_horizon's, 1)")
    p.add_argument("--action-horizon", "--action_horizon", dest="action_horizon", type=int, default=None,
                   help="action chunk length (default model.action_horizon's, 16)")
    p.add_argument("--out", default=None, help="write the tensors to this .safetensors file")
    p.add_argument("--png", default=None, help="write the frames as PNGs into this folder")
    p.set_defaults(handler="atlas.data.inspect:inspect")


def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="convert a dataset: HDF5 to LeRobot v3.0, LeRobot to robomimic HDF5")
    p.add_argument("input", help="HDF5 file or folder, or LeRobot dataset folder")
    p.add_argument("output", help="LeRobot folder (--to lerobot) or .hdf5 file (--to robomimic)")
    p.add_argument("--to", required=True, choices=["lerobot", "robomimic"], help="output format")
    p.add_argument("--format", dest="data_format", default=None, help="input format (default: detected)")
    p.add_argument("--fps", type=int, default=None, help="frames per second written (default: the input's, or 10)")
    p.add_argument("--vcodec", default=None, help="video codec for --to lerobot: libsvtav1 (default), libx264, "
                   "libx265, libx264rgb (lossless)")
    p.add_argument("--layout", choices=["v3.0", "v2.1"], default="v3.0", help="LeRobot layout written")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(handler="atlas.data.convert:convert")


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
    for add in (_add_train, _add_collect, _add_eval, _add_doctor, _add_plan, _add_stats, _add_inspect, _add_convert,
                _add_report, _add_export):
        add(sub)
    return parser


def _check_config_first(args: argparse.Namespace) -> None:
    """Config errors of `train`/`plan` in a fraction of a second, before the command imports torch; the
    command then loads the same config again (milliseconds)."""
    if getattr(args, "config", None) is not None and hasattr(args, "overrides"):
        from atlas.config.loader import load_config

        load_config(args.config, args.overrides, profile=getattr(args, "profile", None))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse like argparse, except that KEY=VALUE overrides may also follow the flags (`atlas train --config F
    --resume auto training.max_steps=50`), which argparse alone calls "unrecognized arguments"."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if "=" in a and not a.startswith("-")] if hasattr(args, "overrides") else []
    unknown = [a for a in extra if a not in overrides]
    if unknown:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        subparsers.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    if overrides:
        args.overrides = list(args.overrides or []) + overrides
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    module_name, func_name = args.handler.split(":")
    try:
        _check_config_first(args)
        handler = getattr(importlib.import_module(module_name), func_name)
        return int(handler(args) or 0)
    except (ConfigError, DataError) as err:
        print(f"atlas {args.command}: {err}", file=sys.stderr)
        return 2
    except AtlasError as err:
        print(f"atlas {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a file the command could not read or write: name it, as git and pip do
        where = f": {err.filename}" if err.filename else ""
        print(f"atlas {args.command}: {err.strerror or err}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C outside the training loop's own handling: what was being written is dropped
        print(f"atlas {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"atlas {args.command}: out of memory (host RAM); use a smaller data.batch_size or model", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
