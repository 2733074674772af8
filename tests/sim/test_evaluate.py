"""Evaluation: Wilson bounds by hand, eval.json fields, the `atlas eval` path on a saved policy, videos."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.sim.helpers import run_atlas, save_as_run, tiny_policy

pytestmark = pytest.mark.sim


def test_wilson_matches_hand_computation():
    from atlas.sim.evaluate import wilson_interval

    # the other textbook form: (2k + z^2 -/+ z sqrt(z^2 + 4k(n-k)/n)) / (2(n + z^2)), z = 1.96
    def by_hand(k, n, z=1.96):
        root = z * math.sqrt(z * z + 4 * k * (n - k) / n)
        return (2 * k + z * z - root) / (2 * (n + z * z)), (2 * k + z * z + root) / (2 * (n + z * z))

    for k, n in [(7, 10), (0, 10), (10, 10), (1, 2), (41, 50)]:
        low, high = wilson_interval(k, n)
        exp_low, exp_high = by_hand(k, n)
        assert low == pytest.approx(exp_low, abs=2e-4) and high == pytest.approx(exp_high, abs=2e-4)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)  # the "rule of three"-like bound
    assert wilson_interval(7, 10) == pytest.approx((0.3968, 0.8922), abs=1e-4)


def test_summary_fields_from_episodes():
    from atlas.sim.evaluate import summarize, wilson_interval
    from atlas.sim.rollout import EpisodeResult

    results = [EpisodeResult("a", i, i, i < 3, 10 + i) for i in range(4)] + [EpisodeResult("b", 0, 9, False, 50)]
    summary = summarize(results, ["a", "b"], 1.5)
    assert summary["tasks"]["a"] == {
        "success_rate": 0.75,
        "episodes": 4,
        "successes": 3,
        "ci95_low": wilson_interval(3, 4)[0],
        "ci95_high": wilson_interval(3, 4)[1],
        "mean_episode_length": 11.5,
        "max_steps": 0,
    }
    assert summary["success_rate"] == pytest.approx((0.75 + 0.0) / 2)  # mean over tasks, not episodes
    assert summary["mean_episode_length"] == pytest.approx((10 + 11 + 12 + 13 + 50) / 5)
    assert summary["episodes"] == 5 and summary["wall_time_s"] == 1.5


def test_eval_seeds_disjoint_from_collection_seeds():
    from atlas.sim.seeding import episode_seed

    collect = {episode_seed("collect", s, t, i) for s in (0, 1000) for t in ("reach-v3", "push-v3") for i in range(200)}
    evals = {episode_seed("eval", s, t, i) for s in (0, 1000) for t in ("reach-v3", "push-v3") for i in range(200)}
    assert len(collect) == len(evals) == 800 and not collect & evals


@pytest.mark.timeout(300)
def test_atlas_eval_on_saved_policy_with_video(collected, tmp_path):
    import imageio.v2 as imageio

    from atlas.sim.evaluate import wilson_interval

    policy = tiny_policy(collected[0])
    assert policy.meta.cameras == ["corner2"] and policy.meta.image_size == (64, 64)
    ema = {k: v + 0.01 if v.is_floating_point() else v for k, v in policy.state_dict().items()}
    save_as_run(policy, tmp_path / "run", obs_horizon=2, ema_state=ema)
    out, videos = tmp_path / "eval.json", tmp_path / "videos"
    proc = run_atlas(
        "eval", "--checkpoint", str(tmp_path / "run"), "--env", "metaworld", "--tasks", "reach-v3", "--episodes", "2",
        "--exec-horizon", "4", "--max-steps", "30", "--record-video", "--video-dir", str(videos), "--out", str(out),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ema weights" in proc.stdout and "reach-v3" in proc.stdout
    summary = json.loads(out.read_text())
    row = summary["tasks"]["reach-v3"]
    assert set(row) >= {"success_rate", "episodes", "successes", "ci95_low", "ci95_high", "mean_episode_length"}
    assert row["episodes"] == 2 and row["success_rate"] == row["successes"] / 2
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx(wilson_interval(row["successes"], 2))
    assert summary["success_rate"] == row["success_rate"] and summary["obs_horizon"] == 2
    assert summary["weights"] == "ema" and summary["wall_time_s"] > 0 and summary["exec_horizon"] == 4
    lengths = [e["length"] for e in summary["per_episode"]]
    assert all(1 <= n <= 30 for n in lengths) and summary["mean_episode_length"] == pytest.approx(np.mean(lengths))
    files = sorted(videos.glob("*.mp4"))
    assert len(files) == 2
    for episode, path in zip(summary["per_episode"], files):
        assert path.name == f"reach-v3_ep{episode['index']:03d}_{'success' if episode['success'] else 'failure'}.mp4"
        frames = imageio.mimread(path)
        assert len(frames) == episode["length"] + 1 and frames[0].shape == (128, 128, 3)
        assert np.asarray(frames[0]).std() > 10  # a real picture, not a blank frame

    # the same run with the raw weights: different weights are loaded and reported
    proc = run_atlas("eval", "--checkpoint", str(tmp_path / "run"), "--tasks", "reach-v3", "--episodes", "1",
                     "--max-steps", "5", "--weights", "raw", "--out", str(tmp_path / "raw.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "raw.json").read_text())["weights"] == "raw"


@pytest.mark.timeout(300)
def test_workers_give_the_same_episodes(collected):
    from atlas.sim import evaluate_policy
    from atlas.sim.rollout import RolloutSpec

    policy = tiny_policy(collected[0])
    spec = RolloutSpec(exec_horizon=4, max_steps=12, obs_horizon=1, seed=1000)
    one = evaluate_policy(policy, ["reach-v3", "push-v3"], 2, spec, workers=1)
    two = evaluate_policy(policy, ["reach-v3", "push-v3"], 2, spec, workers=2)
    strip = lambda s: [(e["task"], e["index"], e["seed"], e["success"], e["length"]) for e in s["per_episode"]]  # noqa: E731
    assert strip(one) == strip(two)
    assert len({e["seed"] for e in one["per_episode"]}) == 4


@pytest.mark.timeout(60)
def test_libero_names_the_missing_package(tmp_path, capsys, monkeypatch):
    """Without LIBERO importable (hidden here: CI installs it), `--env libero` names the extra to install."""
    import sys

    from atlas.cli import main

    for name in ("libero.libero.benchmark", "libero.libero.envs"):
        monkeypatch.setitem(sys.modules, name, None)  # `import` of a None entry raises ImportError
    assert main(["eval", "--checkpoint", str(tmp_path), "--env", "libero"]) == 2
    assert '.[libero]' in capsys.readouterr().err


def test_difference_interval_matches_newcombe_1998():
    """Newcombe (1998), Statistics in Medicine 17:873, table II, method 10, examples (a)-(d)."""
    from atlas.sim.wilson import difference_interval

    assert difference_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert difference_interval(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=1e-4)
    assert difference_interval(6, 7, 2, 7) == pytest.approx((0.0582, 0.8062), abs=1e-4)
    assert difference_interval(5, 56, 0, 29) == pytest.approx((-0.0381, 0.1926), abs=1e-4)


@pytest.mark.timeout(120)
def test_sampling_noise_is_a_function_of_the_episodes_and_leaves_the_callers_rng_alone():
    """A flow head samples from torch's RNG: inside `sampling_seed` the same episodes and steps give the same
    chunk whatever the process drew before, other episodes another one, and the caller's RNG stream (a
    training run evaluating as it trains) continues as if nothing had been drawn."""
    import numpy as np
    import torch

    from atlas.config import load_config
    from atlas.data.registry import build_data
    from atlas.models.registry import build_policy
    from atlas.sim.rollout import sampling_seed

    cfg = load_config(None, ["data.format=synthetic", "data.num_episodes=4", "data.episode_length=12",
                             "model.preset=atlas-tiny", "model.head.name=flow", "data.image_size=0", "data.num_cameras=0",
                             "model.vision.name=none"])
    data = build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, 0)
    policy = build_policy(cfg.model, data.meta, data.normalizer)
    obs = {"state": np.zeros((2, 1, data.meta.state_dim), np.float32), "task_index": np.zeros(2, np.int64)}
    words = [data.meta.tasks[0]] * 2

    def chunk(seeds, steps):
        with sampling_seed(seeds, steps, policy):
            return policy.predict_action_chunk(obs, words)

    torch.manual_seed(123)
    first = chunk([11, 13], [0, 0])
    expected_next = torch.randn(4)
    torch.manual_seed(123)
    torch.randn(1000)  # the process drew something else before evaluating
    again = chunk([11, 13], [0, 0])
    assert torch.equal(first, again)
    assert not torch.equal(first, chunk([11, 13], [4, 4]))  # the next prediction of the same episodes
    assert not torch.equal(first, chunk([15, 17], [0, 0]))  # other episodes
    torch.manual_seed(123)
    chunk([11, 13], [0, 0])
    assert torch.equal(torch.randn(4), expected_next)  # the caller's stream is untouched
