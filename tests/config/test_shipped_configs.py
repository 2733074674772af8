"""Every YAML file shipped in atlas/configs/ (configs, profiles/, recipes/), found by listing the folder, so a
new shipped file is covered (or fails here until it is given its tiny setup): loaded through the real
loader with `profile: auto` resolved on this machine, planned with `atlas plan`, and trained 2 steps with
`atlas train`, both through the real CLI (atlas.cli.main, in this process: a Python start per call would
cost the budget), on data the test writes in the layout and shapes the config expects (robomimic HDF5 with
the Meta-World 39-d state and corner2 camera, LIBERO's own files, RDT's ALOHA episodes). Sizes shrink
through KEY=VALUE overrides only (widths, depths, batch, steps; loader workers 0 for speed); what the test
checks is that the shipped file, as a user runs it, works.

What a CPU user meets with the GPU options, and what this file asserts:
- `profile: auto` resolves to `cpu` here: fp32, workers in the main process. mt10_gpu.yaml and
  libero_gpu.yaml used to set `mixed_precision: bf16` themselves, which beat the cpu profile, so on a CPU
  they trained under CPU bf16 autocast, where torch 2.13's bf16 convolution backward intermittently returns
  NaN weight gradients (steps skipped as non-finite). They now take bf16 from the GPU profiles, as
  train_config.yaml does: bf16 on any GPU profile, fp32 on a CPU (asserted for each config).
- a GPU profile forced on a CPU (`--profile gpu_24gb`) is taken as asked: bf16 autocast on the CPU, its
  memory options (dynamic batch sizing, recomputation) on; the run trains (the MLP of smoke.yaml: no
  convolution) and plan.json says bf16.
- the rdt-1b recipe's bf16 is RDT's finetune.sh setting; its tiny run here overrides it to fp32 (its
  stand-in backbone is a convolution, see above), and the recipe as shipped, without RDT's local folders,
  is one line naming the missing folder (exit 2).
- recipes without a `config:` block describe another tool's run (LeRobot, openpi, OpenVLA) for `atlas
  doctor`: they load as recipes (every parameter with a value and a source), `atlas train` on one is the
  named refusal, and the Atlas model the doctor measures for it (`atlas:` shapes) goes through the planner.
  atlas-metaworld's shape (atlas-small) is trainable and trains 2 steps.

atlas-small (camera + MiniLM + flow head, train_config.yaml) also runs `atlas eval` on Meta-World for one
episode (slow: the simulator).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from extras import require_extra

from atlas.cli import main
from atlas.config import load_config
from atlas.config.errors import ConfigError
from atlas.config.loader import configs_dir, detect_profile
from atlas.planning.recipes import load_recipes
from atlas.planning.run_plan import Hardware, resolve_run_plan
from tests.data.data_h5files import write_aloha, write_libero_demo, write_robomimic

SHIPPED = sorted(p.relative_to(configs_dir()).as_posix() for p in configs_dir().rglob("*.yaml"))
TWO_STEPS = ["training.max_steps=2", "training.warmup_steps=1", "training.val_interval=2", "training.checkpoint_interval=2",
             "training.log_interval=1", "eval.every_n_steps=0", "data_loading.num_workers=0", "logging.tensorboard=false",
             "logging.progress_bar=false"]
SMALL_FUSION = ["model.fusion.width=32", "model.fusion.depth=1", "model.fusion.num_heads=2"]
METAWORLD = SMALL_FUSION + ["data.batch_size=4", "model.vision.width=8", "model.head.num_inference_steps=2"]
TINY_RDT = {"preset": "rdt", "action_horizon": 4, "unified_dim": 16, "fusion": {"width": 32, "depth": 2, "num_heads": 4},
            "language": {"name": "task_embedding", "dim": 16}, "pretrained": None,
            "vision": {"name": "resnet_small", "width": 8, "size": None, "patch_size": None, "image_size": None,
                       "freeze": False, "path": None},
            "rdt": {"max_lang_cond_len": 4, "num_cameras": 3}}
GPU_PROFILES = ("gpu_24gb", "gpu_48gb", "gpu_80gb")


def metaworld_file(tmp: Path) -> list[str]:
    """The quickstart's data layout (data/mt10.hdf5): 39-d state, 4-d actions, corner2 frames, two MT10 tasks."""
    path = write_robomimic(tmp / "mt10.hdf5", tasks={"reach-v3": (0.0, 3), "push-v3": (1.0, 3)}, image_size=32)
    return [f"data.path={path}"] + METAWORLD


def libero_folder(tmp: Path) -> list[str]:
    for seed, task in enumerate(["KITCHEN_SCENE10_close_the_top_drawer_of_the_cabinet",
                                 "KITCHEN_SCENE1_open_the_bottom_drawer_of_the_cabinet"]):
        write_libero_demo(tmp / "libero_90", task, task.split("_", 2)[2].replace("_", " "), episodes=2, length=12,
                          size=16, seed=seed)
    vit = ["model.vision.image_size=16", "model.vision.patch_size=8", "model.vision.width=32", "model.vision.depth=1",
           "model.vision.num_heads=2", "model.vision.pool_grid=2"]
    return [f"data.path={tmp / 'libero_90'}", "data.batch_size=4"] + SMALL_FUSION + vit


def rdt_folder(tmp: Path) -> list[str]:
    root = write_aloha(tmp / "aloha", episodes=3)
    return ([f"data.path={root}", "data.batch_size=4", "training.effective_batch_size=8", "training.mixed_precision=no"]
            + [f"model.{key}={json.dumps(value)}" for key, value in TINY_RDT.items()])


def synthetic(tmp: Path) -> list[str]:
    return ["data.num_episodes=4", "data.episode_length=12"]


# the tiny setup of each trainable shipped file: data it reads, sizes shrunk. A new shipped config or recipe
# with a `config:` block needs an entry (test_every_shipped_file_has_a_tiny_setup says so).
SETUPS: dict[str, Callable[[Path], list[str]]] = {
    "train_config.yaml": metaworld_file, "mt10_gpu.yaml": metaworld_file, "smoke.yaml": synthetic,
    "libero_gpu.yaml": libero_folder, "recipes/rdt-1b-finetune.yaml": rdt_folder,
    "recipes/atlas-metaworld.yaml": metaworld_file,
}
SLOW = {"train_config.yaml", "mt10_gpu.yaml", "libero_gpu.yaml", "recipes/atlas-metaworld.yaml", "recipes/openvla-lora.yaml",
        "recipes/rdt-1b-finetune.yaml"}  # MiniLM, a ViT, the simulator or a 7B planning shape: seconds each


def cases() -> list:
    return [pytest.param(rel, id=rel, marks=[pytest.mark.slow] if rel in SLOW else []) for rel in SHIPPED]


def kind(rel: str) -> str:
    if rel.startswith("profiles/"):
        return "profile"
    if rel.startswith("recipes/"):
        return "recipe" if "config" in yaml.safe_load((configs_dir() / rel).read_text()) else "doctor_recipe"
    return "config"


def cli(*argv: str) -> int:
    return main([str(a) for a in argv])


def plan_json(capsys, config: Path, overrides: list[str]) -> dict:
    capsys.readouterr()
    assert cli("plan", "--config", config, "--format", "json", *overrides) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def train_two_steps(capsys, config: Path, run: Path, overrides: list[str], profile: str | None = None) -> dict:
    flags = ["--profile", profile] if profile else []
    rc = cli("train", "--config", config, "--output-dir", run, *flags, *overrides)
    assert rc == 0, capsys.readouterr().err[-3000:]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if "grad_norm" in m] == [1, 2]
    assert all(m["loss"] == m["loss"] and m["grad_norm"] > 0 for m in lines if "grad_norm" in m)  # finite, it learned
    assert (run / "checkpoints" / "latest" / "model.safetensors").is_file()
    assert "non-finite" not in (run / "train.log").read_text()
    return json.loads((run / "plan.json").read_text())


def test_every_shipped_file_has_a_tiny_setup():
    assert {"train_config.yaml", "mt10_gpu.yaml", "smoke.yaml", "libero_gpu.yaml"} <= set(SHIPPED)
    assert len([r for r in SHIPPED if r.startswith("profiles/")]) == 4 and len([r for r in SHIPPED if r.startswith("recipes/")]) == 8
    missing = [rel for rel in SHIPPED if kind(rel) in ("config", "recipe") and rel not in SETUPS]
    assert not missing, f"shipped configs without a tiny setup in SETUPS: {missing}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("rel", cases())
def test_shipped_file_loads_plans_and_trains_two_steps(rel, tmp_path, capsys):
    path = configs_dir() / rel
    {"config": check_config, "recipe": check_config, "profile": check_profile,
     "doctor_recipe": check_doctor_recipe}[kind(rel)](rel, path, tmp_path, capsys)


def check_config(rel: str, path: Path, tmp: Path, capsys) -> None:
    raw = yaml.safe_load(path.read_text())
    layer = raw.get("config", raw)
    if rel.startswith("recipes/rdt"):  # as shipped, RDT's local folders are named, one line, exit 2
        assert cli("plan", "--config", path) == 2 and "is not a folder" in capsys.readouterr().err
    shipped = load_config(path)  # the real loader, profile resolved
    if raw.get("profile") == "auto":
        assert shipped.profile == detect_profile() == "cpu"  # this machine has no GPU
        assert shipped.training.mixed_precision == "no"  # the cpu profile: fp32
        assert all(load_config(path, profile=gpu).training.mixed_precision == "bf16" for gpu in GPU_PROFILES)
    overrides = SETUPS[rel](tmp) + TWO_STEPS
    cfg = load_config(path, overrides)
    plan = plan_json(capsys, path, overrides)
    batch = layer.get("data", {}).get("batch_size")
    assert plan["micro_batch_size"] == cfg.data.batch_size and plan["effective_batch_size"] == resolve_run_plan(
        cfg, Hardware(world_size=1, gpu_memory_gb=80)).effective_batch_size
    run_plan = train_two_steps(capsys, path, tmp / "run", overrides)
    assert run_plan["mixed_precision"] == cfg.training.mixed_precision
    written = yaml.safe_load((tmp / "run" / "config.yaml").read_text())
    assert written["model"]["preset"] == cfg.model.preset and layer["model"]["preset"].startswith(cfg.model.preset)  # rdt-1b: rdt, shrunk
    assert written["data"]["batch_size"] == cfg.data.batch_size == (4 if rel in SLOW else batch)  # the override or the file's
    if rel == "train_config.yaml":  # atlas-small: camera + frozen MiniLM + flow head, then closed loop
        meta = json.loads((tmp / "run" / "checkpoints" / "latest" / "config.json").read_text())["meta"]
        assert (cfg.model.language.name, cfg.model.head.name, meta["cameras"]) == ("minilm", "flow", ["corner2"])
        evaluate_one_episode(tmp / "run", capsys)


def evaluate_one_episode(run: Path, capsys) -> None:
    require_extra("sim")
    out = run / "eval.json"
    assert cli("eval", "--checkpoint", run, "--tasks", "reach-v3", "--episodes", 1, "--max-steps", 16, "--out", out) == 0, \
        capsys.readouterr().err[-2000:]
    summary = json.loads(out.read_text())
    assert summary["tasks"]["reach-v3"]["episodes"] == 1 and 0.0 <= summary["tasks"]["reach-v3"]["success_rate"] <= 1.0


def check_profile(rel: str, path: Path, tmp: Path, capsys) -> None:
    name = path.stem
    values = yaml.safe_load(path.read_text())
    smoke = configs_dir() / "smoke.yaml"
    cfg = load_config(smoke, synthetic(tmp) + TWO_STEPS, profile=name)
    assert cfg.profile == name and cfg.training.mixed_precision == values["training"]["mixed_precision"]
    for field, value in values["memory_optimization"].items():  # smoke.yaml sets none of these: the profile's
        assert getattr(cfg.memory_optimization, field) == value, field
    plan = plan_json(capsys, smoke, synthetic(tmp) + TWO_STEPS + [f"profile={name}"])
    assert plan["mixed_precision"] == values["training"]["mixed_precision"]
    run_plan = train_two_steps(capsys, smoke, tmp / "run", synthetic(tmp) + TWO_STEPS, profile=name)
    assert run_plan["mixed_precision"] == values["training"]["mixed_precision"]  # a GPU profile on a CPU: bf16 autocast
    assert yaml.safe_load((tmp / "run" / "config.yaml").read_text())["profile"] == name


def check_doctor_recipe(rel: str, path: Path, tmp: Path, capsys) -> None:
    recipe = next(r for r in load_recipes().values() if (configs_dir() / "recipes" / f"{r.name}.yaml") == path)
    assert recipe.parameters and all("value" in p and p.get("source") for p in recipe.parameters.values())
    with pytest.raises(ConfigError, match=r"is a recipe without a `config:` block"):
        load_config(path)
    assert cli("train", "--config", path, "--output-dir", tmp / "run") == 2
    assert "without a `config:` block" in capsys.readouterr().err and not (tmp / "run" / "checkpoints").exists()
    cfg = load_config(None, recipe.atlas)  # the model the doctor measures for this recipe
    plan = resolve_run_plan(cfg, Hardware(world_size=1, gpu_memory_gb=80))
    assert plan.effective_batch_size >= 1 and plan.planned is not None
    if rel in SETUPS:  # a trainable Atlas shape (atlas-metaworld: atlas-small)
        overrides = SETUPS[rel](tmp) + TWO_STEPS
        config = tmp / "recipe_shape.yaml"
        config.write_text("{}\n")
        train_two_steps(capsys, config, tmp / "shape", ["data.format=robomimic"] + list(recipe.atlas) + overrides)
