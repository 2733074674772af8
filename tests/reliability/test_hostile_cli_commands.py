"""Each command with hostile or careless arguments and files (eval, plan, doctor, report, stats, train's data
and models), plus security canaries: nothing in a dataset, HF folder or launch script is ever executed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hostile_cli import Case, judge, outcomes_after_a_trained_run, write
from safetensors.torch import save_file

TINY = """\
data: {format: synthetic, num_episodes: 8, episode_length: 12, state_dim: 6, action_dim: 3}
model: {preset: mlp, hidden_dim: 32, num_layers: 2, action_horizon: 6}
training: {max_steps: 2, val_interval: 0, checkpoint_interval: 2}
logging: {progress_bar: false, tensorboard: false}
"""
H5 = """\
data: {format: robomimic, path: d.hdf5, val_ratio: 0}
model: {preset: mlp, hidden_dim: 32, num_layers: 2, action_horizon: 4}
training: {max_steps: 2, val_interval: 0, checkpoint_interval: 2}
logging: {progress_bar: false, tensorboard: false}
"""
TRAINED: dict[str, Path] = {}
CANARY = "pwned"


def train(*extra: str, cfg: str = "c.yaml") -> list[str]:
    return ["train", "--config", cfg, "--output-dir", "run", *extra]


def robomimic(path: Path, state_dim: int = 5, action_dim: int = 3, image=None, episodes: int = 2, attrs=None) -> None:
    """A small robomimic-layout file: `episodes` demos of 10 steps."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for i in range(episodes):
            demo = f.create_group(f"data/demo_{i}")
            demo.create_dataset("obs/state", data=rng.normal(size=(10, state_dim)).astype(np.float32))
            demo.create_dataset("actions", data=rng.normal(size=(10, action_dim)).astype(np.float32))
            if image is not None:
                demo.create_dataset("obs/agentview_image", data=image)
            for key, value in (attrs or {}).items():
                demo.attrs[key] = value


def h5_case(**kwargs):
    def setup(d: Path) -> None:
        write(d, {"c.yaml": H5})
        robomimic(d / "d.hdf5", **kwargs)
    return setup


def two_files_disagreeing(d: Path) -> None:
    write(d, {"c.yaml": H5.replace("path: d.hdf5", "path: parts")})
    (d / "parts").mkdir()
    robomimic(d / "parts" / "a.hdf5", state_dim=39)
    robomimic(d / "parts" / "b.hdf5", state_dim=7)


def float_images(low: float, high: float):
    frames = np.linspace(low, high, 10 * 8 * 8 * 3).reshape(10, 8, 8, 3)
    return h5_case(image=frames.astype(np.float64))


def evil_hf_folder(d: Path) -> None:
    """A transformers folder asking for remote code whose import would create the canary."""
    write(d, {"c.yaml": TINY.replace("preset: mlp", "preset: atlas-tiny").replace(
        "action_dim: 3}", "action_dim: 3, image_size: 16}"),
        "hf/config.json": json.dumps({"model_type": "evil", "auto_map": {"AutoConfig": "evil.EvilConfig",
                                                                           "AutoModel": "evil.EvilModel"}}),
        "hf/evil.py": f"import os\nos.system('touch {d / CANARY}')\n"})


def vit_weights(matching: bool):
    def setup(d: Path) -> None:
        write(d, {"c.yaml": TINY.replace("preset: mlp", "preset: atlas-tiny").replace(
            "action_dim: 3}", "action_dim: 3, image_size: 16}")})
        name = "patch_embed.weight" if matching else "encoder.layer.0.weight"
        shape = (32, 3, 4, 4) if not matching else (64, 3, 8, 8)  # matching name, wrong shape for width 32
        save_file({name: torch.zeros(shape)}, str(d / "w.safetensors"))
    return setup


VIT = ["model.vision.name=vit", "model.vision.size=tiny", "model.vision.width=32", "model.vision.depth=1",
       "model.vision.num_heads=2", "model.vision.patch_size=4", "model.vision.weights=w.safetensors"]


def trained_checkpoint(more=None):
    def setup(d: Path) -> None:
        shutil.copytree(TRAINED["run"], d / "run", symlinks=True)
        if more:
            more(d)
    return setup


def latest(d: Path) -> Path:
    return d / "run" / "checkpoints" / "step_00000002"


def _converted(d: Path, outcome) -> None:
    assert "converted to uint8" in outcome.stderr, outcome.stderr[-2000:]


EVAL = ["eval", "--checkpoint", "run", "--tasks", "reach-v3"]
CASES = [
    # argument validation at the parser (today: "0 % over 0 episodes", negative batches, silent replacement)
    *[Case(f"eval-{flag.strip('-')}-{value}", [*EVAL, flag, value], names=[flag])
      for flag, value in [("--episodes", "0"), ("--episodes", "-1"), ("--exec-horizon", "0"), ("--max-steps", "0"),
                          ("--workers", "0"), ("--seed", "-3")]],
    *[Case(f"{cmd}-{flag.strip('-')}-{value}", [cmd, *target, flag, value], names=[flag])
      for cmd, target in (("plan", ["--config", "c.yaml"]), ("doctor", ["c.yaml"]))
      for flag, value in [("--gpus", "0"), ("--gpus", "-2"), ("--gpu-memory", "-1"), ("--gpu-memory", "nan"),
                          ("--gpu-memory", "inf")]],
    Case("train-nproc-0", train("--nproc", "0"), setup=lambda d: write(d, {"c.yaml": TINY}), names=["--nproc"]),
    Case("plan-unknown-gpu", ["plan", "--config", "c.yaml", "--gpu", "H20O"], setup=lambda d: write(d, {"c.yaml": TINY}),
         names=["--gpu", "H20O", "H200"]),
    # eval: outputs checked before the evaluation runs; foreign checkpoints named
    Case("eval-out-is-a-folder", [*EVAL, "--episodes", "1", "--out", "results"], setup=trained_checkpoint(
        lambda d: (d / "results").mkdir()), names=["--out", "folder"]),
    Case("eval-out-below-a-file", [*EVAL, "--episodes", "1", "--out", "f/eval.json"], setup=trained_checkpoint(
        lambda d: write(d, {"f": "x"})), names=["--out", "is a file"]),
    Case("eval-out-unwritable", [*EVAL, "--episodes", "1", "--out", "/proc/atlas-eval.json"],
         setup=trained_checkpoint(), names=["--out", "/proc"]),
    Case("eval-video-dir-is-a-file", [*EVAL, "--episodes", "1", "--record-video", "--video-dir", "v"],
         setup=trained_checkpoint(lambda d: write(d, {"v": "x"})), names=["--video-dir"]),
    Case("eval-missing-checkpoint", [*EVAL, "--checkpoint", "nowhere"], names=["--checkpoint", "nowhere"]),
    Case("eval-config-json-invalid", [*EVAL, "--checkpoint", "run/checkpoints/step_00000002"],
         setup=trained_checkpoint(lambda d: (latest(d) / "config.json").write_text("{")), names=["config.json"]),
    Case("eval-config-json-a-list", [*EVAL, "--checkpoint", "run/checkpoints/step_00000002"],
         setup=trained_checkpoint(lambda d: (latest(d) / "config.json").write_text("[]")), names=["config.json"]),
    Case("eval-weights-of-another-model", [*EVAL, "--checkpoint", "run/checkpoints/step_00000002", "--weights", "raw"],
         rc=1, setup=trained_checkpoint(lambda d: save_file({"x": torch.zeros(2)}, str(latest(d) / "model.safetensors"))),
         names=["model.safetensors"]),
    Case("eval-weights-truncated", [*EVAL, "--checkpoint", "run/checkpoints/step_00000002", "--weights", "raw"], rc=1,
         setup=trained_checkpoint(lambda d: (latest(d) / "model.safetensors").write_bytes(b"\x08\x00\x00")),
         names=["model.safetensors"]),
    # doctor: launch scripts that are not readable text
    Case("doctor-dev-zero", ["doctor", "/dev/zero"], names=["/dev/zero", "not a regular file"], timeout=60),
    Case("doctor-missing", ["doctor", "train.sh"], names=["train.sh", "does not exist"]),
    Case("doctor-folder", ["doctor", "."], names=["folder"]),
    Case("doctor-empty-script", ["doctor", "train.sh"], setup=lambda d: write(d, {"train.sh": ""}),
         names=["train.sh", "no launch command"]),
    Case("doctor-not-utf8", ["doctor", "train.sh"], setup=lambda d: write(d, {"train.sh": b"torchrun \xff\xfe x.py\n"}),
         names=["train.sh", "UTF-8"]),
    Case("doctor-unbalanced-quote", ["doctor", "train.sh"],
         setup=lambda d: write(d, {"train.sh": 'torchrun --nproc_per_node=2 train.py --lr "1e-4\n'}),
         names=["train.sh", "No closing quotation"]),
    Case("doctor-5mb-script", ["doctor", "train.sh"], setup=lambda d: write(d, {"train.sh": "#" * (5 * 2**20)}),
         names=["train.sh", "larger than"]),
    # report: a run folder whose files are not what Atlas wrote still gives a report
    Case("report-plan-a-list", ["report", "run"], rc=0, setup=trained_checkpoint(lambda d: write(d, {"run/plan.json": "[1]"}))),
    Case("report-plan-invalid", ["report", "run"], rc=0, setup=trained_checkpoint(lambda d: write(d, {"run/plan.json": "{"}))),
    Case("report-plan-wrong-types", ["report", "run"], rc=0, setup=trained_checkpoint(lambda d: write(d, {
        "run/plan.json": json.dumps({"micro_batch_size": "8", "gradient_accumulation_steps": 0, "world_size": None,
                                     "effective_batch_size": 8, "samples_per_epoch": "many"})}))),
    Case("report-metrics-garbage", ["report", "run"], rc=0, setup=trained_checkpoint(lambda d: write(d, {
        "run/metrics.jsonl": '{"step": "x", "loss": 1}\n[1, 2]\n{"step": 1, "loss": NaN}\n\xff\n'}))),
    Case("report-missing-folder", ["report", "nowhere"], names=["nowhere"]),
    # datasets
    Case("data-float-images-0-1", train(), rc=0, setup=float_images(0.0, 1.0), check=_converted),
    Case("data-float-images-out-of-range", train(), setup=float_images(0.0, 1000.0),
         names=["d.hdf5", "agentview_image", "expected [0, 1] or [0, 255]"]),
    Case("data-zero-width-actions", train(), setup=h5_case(action_dim=0), names=["d.hdf5", "actions", "0 action values"]),
    Case("data-files-disagree-in-state-width", train(), setup=two_files_disagreeing, names=["a.hdf5", "b.hdf5", "state"]),
    Case("data-not-hdf5", train(), setup=lambda d: write(d, {"c.yaml": H5, "d.hdf5": "not hdf5"}), names=["d.hdf5"]),
    Case("data-path-missing", train(), setup=lambda d: write(d, {"c.yaml": H5}), names=["d.hdf5"]),
    Case("stats-not-hdf5", ["stats", "x.hdf5"], rc=1, setup=lambda d: write(d, {"x.hdf5": b"\x00" * 64}), names=["x.hdf5"]),
    # models
    Case("vision-weights-ignored-by-resnet", train("model.vision.weights=w.safetensors"),
         setup=vit_weights(matching=False), names=["model.vision.weights", "resnet_small"]),
    Case("vit-weights-matching-no-key", train(*VIT), setup=vit_weights(matching=False),
         names=["model.vision.weights", "none matches"]),
    Case("vit-weights-wrong-shapes", train(*VIT), setup=vit_weights(matching=True),
         names=["model.vision.weights", "patch_embed.weight"]),
    Case("vision-weights-missing-file", train(*VIT[:-1], "model.vision.weights=nope.safetensors"),
         setup=vit_weights(matching=False), names=["model.vision.weights", "nope.safetensors"]),
    # security canaries
    Case("hf-folder-asking-for-remote-code", train("model.vision.name=hf", "model.vision.path=hf"),
         setup=evil_hf_folder, names=["model.vision.path", "hf"], absent=[CANARY]),
    Case("hf-folder-garbage-config", train("model.vision.name=hf", "model.vision.path=hf"),
         setup=lambda d: (evil_hf_folder(d), write(d, {"hf/config.json": "{not json"})), names=["model.vision.path"],
         absent=[CANARY]),
    Case("hdf5-attributes-with-shell-and-python", ["stats", "d.hdf5"], rc=0, absent=[CANARY],
         setup=h5_case(attrs={"task": "$(touch pwned)", "language_instruction": "__import__('os').system('touch pwned')"})),
    Case("launch-script-command-substitution", ["doctor", "train.sh"], rc=None, absent=[CANARY],
         setup=lambda d: write(d, {"train.sh": "X=$(touch pwned)\n`touch pwned`\ntorchrun --nproc_per_node=2 "
                                                "train.py --lr $(touch pwned)\n"})),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return outcomes_after_a_trained_run(tmp_path_factory.mktemp("hostile-commands"), TINY, TRAINED, CASES)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_command(case, outcomes):
    judge(case, outcomes[case.id])
