"""model.lora: adapter count by formula, frozen base (bitwise) through a real `atlas train`, optimizer state for
adapters only, `atlas export --merge-lora` giving the same actions, bitwise resume, the planner's counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import REPO, TINY, final_weights, train_run

from atlas.config import ConfigError, load_config
from atlas.data.episodes import DatasetMeta
from atlas.models.lora import adapter_parameters, is_adapter
from atlas.models.registry import build_policy

TINY_ATLAS = ["model.preset=atlas-tiny", "data.image_size=0"]
LORA = ["model.lora.rank=4", "model.lora.alpha=8"]


def build_policy_on_meta(cfg, meta):
    """Shapes only, as the planner builds it."""
    from atlas.data.normalize import Normalizer

    return build_policy(cfg, meta, Normalizer({}), device="meta")


def meta() -> DatasetMeta:
    return DatasetMeta(6, 3, [], None, ["a", "b"], {"a": "do a", "b": "do b"})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cross", [False, True])
def test_adapter_count_is_the_closed_formula(cross):
    """Per block, r x (in + out) for each adapted linear: self-attention qkv (w, 3w) and proj (w, w), MLP fc1
    (w, mw) and fc2 (mw, w) = r w (8 + 2m); cross-attention adds q (w, w), kv (w, 2w), proj (w, w) = 7 r w."""
    r, w, depth, m = 4, 64, 2, 2.0
    extra = ["model.fusion.cross_attention=true"] if cross else []
    cfg = load_config(None, TINY + TINY_ATLAS + LORA + extra)
    policy = build_policy_on_meta(cfg.model, meta())
    expected = r * depth * w * (8 + 2 * m + (7 if cross else 0))
    assert adapter_parameters(policy) == expected
    assert policy.num_parameters(trainable=True) == expected  # everything else frozen by default
    cfg = load_config(None, TINY + TINY_ATLAS + LORA + extra + ["model.lora.trainable_modules=[action_head]"])
    policy = build_policy_on_meta(cfg.model, meta())
    head = sum(p.numel() for n, p in policy.named_parameters() if n.startswith("action_head."))
    assert policy.num_parameters(trainable=True) == expected + head


@pytest.mark.timeout(30)
def test_lora_switch_and_target_errors():
    assert load_config(None, TINY + ["model.lora=true"]).model.lora.rank == 8
    assert load_config(None, TINY + ["model.lora=off"]).model.lora is None
    assert load_config(None, TINY + ["model.lora=yes"]).model.lora.alpha == 16.0
    cfg = load_config(None, TINY + TINY_ATLAS + ["model.lora.target_modules=[attn.qkv, nothere]"])
    with pytest.raises(ConfigError, match="'nothere' selects no nn.Linear"):
        build_policy_on_meta(cfg.model, meta())


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "atlas.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> tuple[Path, Path]:
    """A real atlas-tiny base run, then a LoRA fine-tune of it through `atlas train --init-from`."""
    root = tmp_path_factory.mktemp("lora")
    train_run(root / "base", TINY_ATLAS + ["training.max_steps=4", "training.val_interval=0", "training.ema.enabled=true"])
    (root / "empty.yaml").write_text("{}\n")
    cli("train", "--config", str(root / "empty.yaml"), "--output-dir", str(root / "ft"), "--init-from", str(root / "base"),
        *TINY, *TINY_ATLAS, *LORA, "training.max_steps=6", "training.val_interval=0", "training.ema.enabled=true",
        "training.learning_rate=1e-2", "training.warmup_steps=1")
    return root / "base", root / "ft"


@pytest.mark.timeout(300)
def test_training_moves_adapters_only_and_the_base_stays_bitwise(lora_run):
    base, ft = lora_run
    from atlas.engine.checkpoint import load_weights  # whole: an EMA file leaves the frozen base to the raw file

    source = load_weights(base / "checkpoints/latest/ema/model.safetensors")
    for rel in ("model.safetensors", "ema/model.safetensors"):
        after = load_weights(ft / "checkpoints/latest" / rel)
        assert set(after) - set(source) == {k for k in after if is_adapter(k)}
        assert all(torch.equal(after[k], source[k]) for k in source), rel
        lora_b = [after[k] for k in after if k.endswith(".lora_B")]
        assert lora_b and all(b.abs().sum() > 0 for b in lora_b)  # B starts at zero: every adapter trained
    optimizer = torch.load(ft / "checkpoints/latest/optimizer.pt", weights_only=True)
    held = sum(s["exp_avg"].numel() for s in optimizer["state"].values())
    adapters = sum(v.numel() for k, v in after.items() if is_adapter(k))
    assert held == adapters == 4 * 2 * 64 * 12
    assert f"param group default: {adapters:,} params" in (ft / "train.log").read_text()


@pytest.mark.timeout(300)
def test_merged_export_gives_the_same_actions_as_adapters_over_the_base(lora_run, tmp_path):
    from atlas.sim.checkpoint import load_checkpoint

    base, ft = lora_run
    out = tmp_path / "merged"
    cli("export", "--merge-lora", str(ft), str(out))
    merged_state = load_file(str(out / "model.safetensors"))
    assert not any(is_adapter(k) for k in merged_state)
    assert json.loads((out / "config.json").read_text())["model"]["lora"] is None
    obs = {"state": torch.randn(5, 1, 6, generator=torch.Generator().manual_seed(0)),
           "task_index": torch.tensor([0, 1, 0, 1, 0])}
    actions = {}
    for name, path in (("adapters", ft), ("merged", out), ("base", base)):
        for weights in ("ema", "raw"):
            policy = load_checkpoint(path, weights).policy
            torch.manual_seed(11)  # the flow head's initial noise
            actions[name, weights] = policy.predict_action_chunk(obs, ["do a"] * 5)
    for weights in ("ema", "raw"):
        assert torch.allclose(actions["adapters", weights], actions["merged", weights], atol=1e-5, rtol=0)
        assert not torch.allclose(actions["adapters", weights], actions["base", weights], atol=1e-3)


@pytest.mark.timeout(240)
def test_lora_resume_is_bitwise_equal(tmp_path, monkeypatch):
    run = [*LORA, "model.lora.dropout=0.1", "model.lora.target_modules=[fusion, action_head]", "training.max_steps=8",
           "training.checkpoint_interval=4", "training.val_interval=0", "training.ema.enabled=true"]
    train_run(tmp_path / "full", run)
    monkeypatch.setenv("ATLAS_STOP_AT_STEP", "3")
    assert train_run(tmp_path / "cut", run)["final_step"] == 3
    monkeypatch.delenv("ATLAS_STOP_AT_STEP")
    train_run(tmp_path / "cut", run, resume="auto")
    a, b = final_weights(tmp_path / "full"), final_weights(tmp_path / "cut")
    assert any(is_adapter(k) for k in a) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.timeout(120)
def test_planner_counts_optimizer_state_for_adapters_only():
    from atlas.planning.memory import state_bytes
    from atlas.planning.probe import probe_model

    full = probe_model(load_config(None, TINY + TINY_ATLAS))
    lora = probe_model(load_config(None, TINY + TINY_ATLAS + LORA))
    adapters = 4 * 2 * 64 * 12
    assert lora.params.trainable == adapters
    assert lora.params.frozen == full.params.total  # the base, frozen; nothing lost or double-counted
    ddp_full, ddp_lora = (state_bytes(p, "ddp", 1, "no", ema=False) for p in (full, lora))
    assert ddp_lora["optimizer"] == 8 * adapters and ddp_full["optimizer"] == 8 * full.params.trainable
    assert ddp_lora["weights"] == 4 * (adapters + full.params.total)
