"""model.pretrained / --init-from: real checkpoints written by the real loop, loaded by the library and by
`atlas train` subprocesses (first-step weights, load report, strict/re-init paths, resume, normalization)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from train_helpers import REPO, TINY, final_weights, read_metrics, train_run

from atlas.config import ConfigError, load_config
from atlas.data.registry import build_data
from atlas.models.pretrained import initialise_from_pretrained, load_into, plan_notes, resolve_source
from atlas.models.registry import build_policy

BASE = ["training.max_steps=4", "training.checkpoint_interval=2", "training.val_interval=2", "training.ema.enabled=true"]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A real 4-step run (EMA on, checkpoints at 2 and 4, best by val_loss) to initialise from."""
    run = tmp_path_factory.mktemp("base") / "run"
    train_run(run, BASE)
    return run


def build_policy_on_meta(cfg, meta):
    """Shapes only, as the planner builds it."""
    from atlas.data.normalize import Normalizer

    return build_policy(cfg, meta, Normalizer({}), device="meta")


def cli_train(run_dir: Path, overrides: list[str], init_from: Path | None = None, resume: str | None = None,
              env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    config = run_dir.parent / "empty.yaml"
    config.write_text("{}\n")
    cmd = [sys.executable, "-m", "atlas.cli", "train", "--config", str(config), "--output-dir", str(run_dir)]
    cmd += ["--init-from", str(init_from)] if init_from else []
    cmd += ["--resume", resume] if resume else []
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd + TINY + overrides, capture_output=True, text=True, timeout=timeout, env=env)


def fresh_policy(overrides: list[str], seed: int = 123):
    cfg = load_config(None, TINY + overrides)
    data = build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, 0)
    torch.manual_seed(seed)
    return cfg, data, build_policy(cfg.model, data.meta, data.normalizer)


def best_dir(run: Path) -> Path:
    return (run / "checkpoints" / "best").resolve()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("weights", ["ema", "raw"])
def test_loaded_weights_are_the_checkpoints_bitwise(base_run, weights):
    cfg, _, policy = fresh_policy([f"model.pretrained={base_run}", f"model.pretrained_weights={weights}"])
    report = load_into(policy, cfg.model)
    file = best_dir(base_run) / ("ema/model.safetensors" if weights == "ema" else "model.safetensors")
    source = load_file(str(file))
    state = policy.state_dict()
    assert set(report.loaded) == set(state) == set(source)
    assert all(torch.equal(state[k], source[k]) for k in source)
    assert not (report.missing or report.unexpected or report.mismatched or report.reinitialised)
    assert report.by_module()["fusion"]["loaded"] == sum(k.startswith("fusion.") for k in source)


@pytest.mark.timeout(60)
def test_checkpoint_choice_file_and_folder_sources(base_run):
    assert resolve_source(base_run).directory == best_dir(base_run)
    assert resolve_source(base_run, "latest").directory.name == "step_00000004"
    assert resolve_source(base_run, "step_2").directory.name == "step_00000002"
    with pytest.raises(ConfigError, match="step_00000003 does not exist"):
        resolve_source(base_run, "step_3")
    folder = resolve_source(base_run / "checkpoints" / "step_00000004", weights="raw")
    assert (folder.kind, folder.weights_kind) == ("atlas-checkpoint", "raw")
    file = resolve_source(base_run / "checkpoints" / "step_00000004" / "model.safetensors")
    assert file.kind == "safetensors"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_source(base_run / "nope")


@pytest.mark.timeout(60)
def test_a_corrupt_checkpoint_is_refused_naming_the_file(base_run, tmp_path):
    copy = tmp_path / "ckpt"
    shutil.copytree(base_run / "checkpoints" / "step_00000004", copy)
    (copy / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="model.safetensors"):
        resolve_source(copy)


@pytest.mark.timeout(180)
def test_first_step_weights_are_the_source_checkpoints(base_run, tmp_path):
    """Modules at lr multiplier 0 never update: after the run they still hold exactly what was loaded, which
    must be the source checkpoint's (EMA) tensors; the trained head moved; the run counted from step 1."""
    run = tmp_path / "ft"
    proc = cli_train(run, ["training.max_steps=2", "training.lr_multipliers={fusion: 0, task_embedding: 0}",
                           "training.val_interval=0", "training.log_interval=1"], init_from=base_run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    source = load_file(str(best_dir(base_run) / "ema" / "model.safetensors"))
    after = final_weights(run)
    frozen = [k for k in source if k.startswith(("fusion.", "task_embedding."))]
    assert frozen and all(torch.equal(after[k], source[k]) for k in frozen)
    assert not torch.equal(after["action_head.weight"], source["action_head.weight"])
    assert [m["step"] for m in read_metrics(run) if "loss" in m][0] == 1
    assert json.loads((run / "checkpoints/latest/trainer_state.json").read_text())["step"] == 2
    block = json.loads((run / "plan.json").read_text())["pretrained"]
    assert block["checkpoint"] == str(best_dir(base_run)) and block["weights_kind"] == "ema"
    assert block["report"]["counts"]["loaded"] == len(source)
    assert block["report"]["by_module"]["fusion"]["loaded"] == sum(k.startswith("fusion.") for k in source)
    assert "pretrained:" in (run / "train.log").read_text()


@pytest.mark.timeout(120)
def test_shape_mismatch_is_one_error_naming_the_tensors(base_run, tmp_path):
    proc = cli_train(tmp_path / "ft", ["training.max_steps=1", "data.action_dim=4"], init_from=base_run)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "action_head.weight (18, 32) in the checkpoint vs (24, 32) in the policy" in line
    assert "action_head.bias" in line and "model.pretrained_reinit=[action_head]" in line


@pytest.mark.timeout(120)
def test_reinit_keeps_exactly_the_named_modules_fresh(base_run):
    overrides = [f"model.pretrained={base_run}", "data.action_dim=4", "model.pretrained_reinit=[action_head]"]
    cfg, _, policy = fresh_policy(overrides, seed=7)
    fresh = {k: v.clone() for k, v in policy.state_dict().items()}
    report = load_into(policy, cfg.model)
    source = load_file(str(best_dir(base_run) / "ema" / "model.safetensors"))
    state = policy.state_dict()
    assert sorted(report.reinitialised) == ["action_head.bias", "action_head.weight"]
    assert all(torch.equal(state[k], fresh[k]) for k in report.reinitialised)
    assert all(torch.equal(state[k], source[k]) for k in state if not k.startswith("action_head."))
    assert any("re-initialised" in line and "action_head" in line for line in report.lines())


@pytest.mark.timeout(120)
def test_non_strict_loads_what_matches_and_says_what_it_kept(base_run):
    cfg, _, policy = fresh_policy([f"model.pretrained={base_run}", "data.action_dim=4",
                                   "model.pretrained_strict=false"], seed=7)
    fresh = {k: v.clone() for k, v in policy.state_dict().items()}
    report = load_into(policy, cfg.model)
    state = policy.state_dict()
    assert sorted(m[0] for m in report.mismatched) == ["action_head.bias", "action_head.weight"]
    assert torch.equal(state["action_head.weight"], fresh["action_head.weight"])
    assert not torch.equal(state["fusion.0.weight"], fresh["fusion.0.weight"])
    assert any("kept at their fresh initialisation" in n for n in report.notes)


@pytest.mark.timeout(60)
def test_missing_and_unexpected_tensors_are_named_and_reinit_prefixes_checked(base_run, tmp_path):
    source = load_file(str(best_dir(base_run) / "model.safetensors"))
    source.pop("fusion.0.bias")
    source["extra.weight"] = torch.zeros(2)
    file = tmp_path / "edited.safetensors"
    save_file(source, str(file))
    cfg, _, policy = fresh_policy([f"model.pretrained={file}"])
    with pytest.raises(ConfigError, match=r"missing \(1\): fusion.0.bias.*unexpected \(1\): extra.weight"):
        load_into(policy, cfg.model)
    cfg, _, policy = fresh_policy([f"model.pretrained={file}", "model.pretrained_reinit=[actionhead]"])
    with pytest.raises(ConfigError, match="pretrained_reinit: no tensor of the policy starts with 'actionhead'"):
        load_into(policy, cfg.model)


@pytest.mark.timeout(240)
def test_resumed_finetune_continues_bitwise_and_never_reads_the_base_again(base_run, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(base_run, base, symlinks=True)
    run = ["training.max_steps=6", "training.checkpoint_interval=3", "training.val_interval=0",
           "training.ema.enabled=true", "data.stats=pretrained"]
    straight = cli_train(tmp_path / "straight", run, init_from=base)
    assert straight.returncode == 0, straight.stderr[-3000:]
    cut = cli_train(tmp_path / "cut", run, init_from=base, env={"ATLAS_STOP_AT_STEP": "3"})
    assert cut.returncode == 0, cut.stderr[-3000:]
    shutil.rmtree(base)  # a resume that tried to reload the base would fail now
    resumed = cli_train(tmp_path / "cut", run, init_from=base, resume="auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "stopped after step 3" in cut.stderr and "not reloaded" in (tmp_path / "cut" / "train.log").read_text()
    ema_a, ema_b = (load_file(str(tmp_path / r / "checkpoints/latest/ema/model.safetensors")) for r in ("straight", "cut"))
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


@pytest.mark.timeout(120)
def test_data_stats_pretrained_reuses_the_checkpoints_statistics_and_warns_on_range(base_run, tmp_path):
    # another synthetic dataset (more episodes, another seed): its actions reach beyond the base's range
    cfg, data, policy = fresh_policy([f"model.pretrained={base_run}", "data.stats=pretrained",
                                      "data.num_episodes=16", "training.seed=3"])
    own = data.normalizer.stats
    messages = []

    class Log:
        info = warning = staticmethod(messages.append)

    block = initialise_from_pretrained(policy, cfg.model, cfg.data.stats, data, Log)
    saved = json.loads((best_dir(base_run) / "normalization.json").read_text())["stats"]
    assert policy.normalizer.stats == saved and data.transform.normalizer is policy.normalizer
    assert saved != own
    assert block["normalization"]["stats"] == "pretrained"
    assert block["normalization"]["range_warning"] and any("leave the range" in m for m in messages)
    # the default: the new data's own statistics
    cfg, data, policy = fresh_policy([f"model.pretrained={base_run}", "data.num_episodes=16", "training.seed=3"])
    block = initialise_from_pretrained(policy, cfg.model, cfg.data.stats, data, Log)
    assert policy.normalizer.stats == data.normalizer.stats and block["normalization"]["stats"] == "data"


@pytest.mark.timeout(60)
def test_data_stats_pretrained_without_a_base_is_a_config_error():
    cfg, data, policy = fresh_policy(["data.stats=pretrained"])
    with pytest.raises(ConfigError, match="data.stats=pretrained needs model.pretrained"):
        initialise_from_pretrained(policy, cfg.model, cfg.data.stats, data, None)


@pytest.mark.timeout(60)
def test_planner_checks_the_config_model_against_the_checkpoint(base_run):
    cfg = load_config(None, TINY + [f"model.pretrained={base_run}"])
    from atlas.planning.probe import dataset_meta

    notes = plan_notes(cfg, build_policy_on_meta(cfg.model, dataset_meta(cfg)))
    assert len(notes) == 1 and "has the config's model shapes" in notes[0]
    cfg = load_config(None, TINY + [f"model.pretrained={base_run}", "model.hidden_dim=16"])
    notes = plan_notes(cfg, build_policy_on_meta(cfg.model, dataset_meta(cfg)))
    assert "does NOT match" in notes[0] and "fusion.0.weight (32, 22) in the checkpoint vs (16, 22)" in notes[0]


@pytest.mark.timeout(120)
def test_eval_loader_reads_a_finetuned_run(base_run, tmp_path):
    from atlas.sim.checkpoint import load_checkpoint

    run = tmp_path / "ft"
    train_run(run, ["training.max_steps=2", f"model.pretrained={base_run}", "training.val_interval=0"])
    loaded = load_checkpoint(run)
    out = loaded.policy.predict_action_chunk({"state": torch.zeros(1, 1, 6)}, ["task0"])
    assert out.shape == (1, 6, 3) and torch.isfinite(out).all()


@pytest.mark.timeout(120)
def test_doctor_reports_whether_the_checkpoint_fits_the_config(base_run, tmp_path):
    from atlas.planning.doctor import run_doctor
    from atlas.planning.setup import read_setup

    statuses = {}
    for name, hidden in (("same", 32), ("other", 16)):
        config = tmp_path / f"{name}.yaml"
        config.write_text(f"data: {{format: synthetic, num_episodes: 8, episode_length: 12, state_dim: 6, action_dim: 3}}\n"
                          f"model: {{preset: mlp, hidden_dim: {hidden}, num_layers: 2, action_horizon: 6, "
                          f"pretrained: {base_run}}}\n")
        report = run_doctor(read_setup(str(config), None), None, 24)
        found = [f for f in report.findings if f.parameter == "model.pretrained"]
        assert len(found) == 1
        statuses[name] = (found[0].yours, found[0].why)
    assert statuses["same"][0] == "match"
    assert statuses["other"][0] == "differ" and "fusion.0.weight (32, 22) in the checkpoint" in statuses["other"][1]
