"""training.strategy=fsdp (FSDP2) and deepspeed (ZeRO-2) in the real loop: torchrun, gloo, 2 CPU ranks.

The policy is atlas-tiny with a camera, so the fusion blocks and the vision backbone are sharded, not
only the root. Its head is `l1`: the flow and diffusion heads draw noise from each rank's own RNG
stream, so no 2-rank run could equal a 1-rank one. Adam's eps is 1e-5: some gradients are zero in
exact arithmetic (the key bias of attention, convolutions before GroupNorm) and come out as 1e-9 noise
whose sign depends on the summation order; with eps 1e-8 Adam turns that noise into LR-sized steps that
differ between any two splits of the batch, with 1e-5 it stays below 1e-6 while a real difference
(lost gradients, a wrong shard) stays far above the 1e-5 tolerance.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch
from train_helpers import TINY, assert_close, final_weights, read_metrics, torchrun, train_run

from atlas.config import load_config
from atlas.config.errors import ConfigError
from atlas.engine.distributed import DistContext
from atlas.engine.strategy import Strategy, build_strategy

pytestmark = [pytest.mark.slow]

# episode_length 17: 33 validation samples, so with micro-batch 4 rank 0 has 5 batches and rank 1 has 4
# (a sharded forward is a collective: rank 1 must run a fifth, uncounted, or both would hang)
ATLAS = ["model.preset=atlas-tiny", "model.head.name=l1", "data.image_size=16", "data.episode_length=17",
         "training.ema.enabled=true", "training.adam_eps=1e-5", "training.max_steps=20", "training.val_interval=10",
         "training.checkpoint_interval=10", "training.lr_scheduler=cosine", "training.warmup_steps=3",
         "training.learning_rate=3e-3"]
TWO = ["data.batch_size=4", "training.gradient_accumulation_steps=2"]
ONE = ["data.batch_size=4", "training.gradient_accumulation_steps=4"]
FSDP = ATLAS + ["training.strategy=fsdp"]
# DeepSpeed hands a parameter that never gets a gradient (the l1 head's unused action input) a zero
# gradient where torch skips it, so weight decay would move it under ZeRO only; without decay both agree.
NO_DECAY = ATLAS + ["training.weight_decay=0"]
ZERO2 = NO_DECAY + ["training.strategy=deepspeed", "training.zero_stage=2"]


def ema_weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "checkpoints" / "latest" / "ema" / "model.safetensors"))


def val_losses(run_dir: Path) -> list[float]:
    return [m["val_loss"] for m in read_metrics(run_dir) if "val_loss" in m]


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory) -> tuple[Path, str]:
    """One uninterrupted 2-rank FSDP run, shared by the tests that compare with it."""
    run = tmp_path_factory.mktemp("fsdp") / "two"
    return run, torchrun(run, FSDP + TWO).stderr


@pytest.mark.timeout(240)
def test_fsdp_two_ranks_equal_one_rank_with_a_sharded_ema(fsdp_run, tmp_path):
    run, stderr = fsdp_run
    assert "strategy: fsdp (FSDP2) over 2 process(es)" in (run / "train.log").read_text()
    held = {int(r): (int(a), int(b)) for r, a, b in re.findall(r"EMA on rank (\d): (\d+) of (\d+) elements \(fsdp\)", stderr)}
    assert set(held) == {0, 1}
    total = held[0][1]
    assert all(local < total for local, _ in held.values()) and held[0][0] + held[1][0] == total  # sharded, no overlap

    train_run(tmp_path / "one", ATLAS + ONE)
    assert_close(final_weights(run), final_weights(tmp_path / "one"))
    assert_close(ema_weights(run), ema_weights(tmp_path / "one"))  # the saved EMA is the full state
    # validation on both ranks with unequal batch counts: the same loss as one process
    assert val_losses(run) == pytest.approx(val_losses(tmp_path / "one"), abs=1e-5)


@pytest.mark.timeout(240)
def test_fsdp_resume_on_two_and_on_one_rank_and_load_in_one_process(fsdp_run, tmp_path):
    from atlas.sim.checkpoint import load_checkpoint

    reference, _ = fsdp_run
    cut = tmp_path / "cut"
    torchrun(cut, FSDP + TWO, env={"ATLAS_STOP_AT_STEP": "7"})
    assert json.loads((cut / "checkpoints" / "latest" / "trainer_state.json").read_text())["step"] == 7
    shutil.copytree(cut, tmp_path / "cut_one", symlinks=True)
    torchrun(cut, FSDP + TWO, resume="auto")
    for mine, theirs in ((final_weights(cut), final_weights(reference)), (ema_weights(cut), ema_weights(reference))):
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)

    # full optimizer state keyed by name: the same checkpoint continues on one process (accumulation doubled)
    train_run(tmp_path / "cut_one", FSDP + TWO, resume="auto")
    assert_close(final_weights(reference), final_weights(tmp_path / "cut_one"))

    loaded = load_checkpoint(reference)  # one process, no process group: plain safetensors
    assert loaded.weights_kind == "ema"
    state = loaded.policy.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ema_weights(reference).items())


@pytest.mark.timeout(180)
def test_fsdp_sim_evaluation_runs_on_rank_zero_without_a_sharded_forward(tmp_path):
    """Rank 0 alone in a sharded forward would wait forever for rank 1's all-gather (and the test time out)."""
    pytest.importorskip("metaworld")
    torchrun(tmp_path / "run", [
        "model.preset=atlas-tiny", "model.head.name=l1", "data.state_dim=39", "data.action_dim=4",
        "model.action_horizon=4", "training.max_steps=4", "training.val_interval=2", "training.ema.enabled=true",
        "training.strategy=fsdp", "eval.every_n_steps=2", "eval.tasks=[reach-v3]", "eval.episodes=1",
        "eval.max_steps=12", "eval.exec_horizon=4",
    ])
    rows = [m for m in read_metrics(tmp_path / "run") if "success_rate" in m]
    assert [m["step"] for m in rows] == [2, 4] and all(0.0 <= m["success_rate"] <= 1.0 for m in rows)


@pytest.fixture(scope="module")
def zero2_run(tmp_path_factory) -> tuple[Path, str]:
    pytest.importorskip("deepspeed")
    run = tmp_path_factory.mktemp("zero2") / "two"
    return run, torchrun(run, ZERO2 + TWO).stderr


@pytest.fixture(scope="module")
def one_without_decay(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("one") / "one"
    train_run(run, NO_DECAY + ONE)
    return run


@pytest.mark.timeout(240)
def test_deepspeed_zero2_two_ranks_equal_one_rank_ddp(zero2_run, one_without_decay):
    run, stderr = zero2_run
    assert "EMA on rank 1: " in stderr and "(deepspeed)" in stderr
    assert_close(final_weights(run), final_weights(one_without_decay))
    assert_close(ema_weights(run), ema_weights(one_without_decay))


@pytest.mark.timeout(240)
def test_deepspeed_zero1_two_ranks_equal_one_rank_ddp(one_without_decay, tmp_path):
    pytest.importorskip("deepspeed")
    torchrun(tmp_path / "zero1", [*ZERO2, "training.zero_stage=1", *TWO])
    assert "strategy: deepspeed ZeRO-1 over 2 process(es)" in (tmp_path / "zero1" / "train.log").read_text()
    assert_close(final_weights(tmp_path / "zero1"), final_weights(one_without_decay))


@pytest.mark.timeout(240)
def test_deepspeed_zero2_resumes_on_two_ranks_and_on_one(zero2_run, tmp_path):
    reference, _ = zero2_run
    torchrun(tmp_path / "cut", ZERO2 + TWO, env={"ATLAS_STOP_AT_STEP": "7"})
    shutil.copytree(tmp_path / "cut", tmp_path / "cut_one", symlinks=True)
    torchrun(tmp_path / "cut", ZERO2 + TWO, resume="auto")
    mine, theirs = final_weights(tmp_path / "cut"), final_weights(reference)
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    # ZeRO's partitions were saved as one full, name-keyed optimizer state: one process continues it
    train_run(tmp_path / "cut_one", ZERO2 + TWO, resume="auto")
    assert_close(final_weights(tmp_path / "cut_one"), theirs)


# -- refusals: fast, no processes ----------------------------------------------------------------------
def _strategy(overrides: list[str], world_size: int) -> Strategy:
    cfg = load_config(None, TINY + overrides)
    ctx = DistContext(0, 0, world_size, torch.device("cpu"), "gloo" if world_size > 1 else None)
    return build_strategy(cfg.training, cfg.memory_optimization, ctx, 4, 2, logging.getLogger("test_fsdp"))


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_dynamic_batch_size_is_refused_with_a_sharded_strategy(strategy):
    with pytest.raises(ConfigError, match=r"dynamic_batch_size.*never completes.*training.strategy=ddp"):
        _strategy([f"training.strategy={strategy}", "memory_optimization.dynamic_batch_size=true"], 2)
    assert type(_strategy(["training.strategy=ddp", "memory_optimization.dynamic_batch_size=true"], 2)) is Strategy


def test_one_process_trains_unsharded_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="test_fsdp"):
        assert type(_strategy(["training.strategy=fsdp"], 1)) is Strategy
    assert "training.strategy=fsdp with one process: nothing to shard, training unsharded" in caplog.text
    summary = train_run(tmp_path, ["training.strategy=fsdp", "training.max_steps=2", "memory_optimization.dynamic_batch_size=true"])
    assert summary["final_step"] == 2
    assert "nothing to shard" in (tmp_path / "train.log").read_text()


def test_deepspeed_refusals_name_what_is_missing():
    with pytest.raises(ConfigError, match="zero_stage=3.*training.strategy=fsdp"):
        _strategy(["training.strategy=deepspeed", "training.zero_stage=3"], 2)
    with pytest.raises(ConfigError, match="fp16.*bf16"):
        _strategy(["training.strategy=deepspeed", "training.mixed_precision=fp16"], 2)
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"needs the deepspeed package.*pip install 'atlas-vla\[deepspeed\]'"):
            _strategy(["training.strategy=deepspeed"], 2)
    else:
        assert _strategy(["training.strategy=deepspeed"], 2).name == "deepspeed"
