"""RDT's own release layout: shared/fixtures/rdt_tiny (written by RDT's code at deb71d8) loads into
Atlas's RDT network with no missing or unexpected tensor and reproduces RDT's denoiser output and
sampled actions; the replay command does the same through a real subprocess; damaged folders fail
with one message naming the file."""

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

from atlas.config.errors import ConfigError
from atlas.engine.checkpoint import CheckpointError
from atlas.models.rdt.pos_embed import condition_table, input_table
from atlas.models.rdt.release import is_rdt_release, load_release_state_dict, read_release_config
from atlas.models.rdt.replay import load_runner, replay
from atlas.models.rdt.runner import RDTRunner
from atlas.models.rdt.scheduler import NoiseSchedule

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT.parent / "shared" / "fixtures" / "rdt_tiny"
pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"{FIXTURE} is not there")


def _max_diff(out: dict, expected: dict) -> dict[str, float]:
    return {k: (out[k] - expected[k]).abs().max().item() for k in ("pred", "actions")}


def test_release_loads_with_no_missing_or_unexpected_tensor():
    assert is_rdt_release(FIXTURE)
    state = load_release_state_dict(FIXTURE)
    runner = RDTRunner(read_release_config(FIXTURE))
    result = runner.load_state_dict(state, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert len(state) == len(runner.state_dict()) == 114


def test_fixture_pred_and_actions_reproduced():
    out = replay(load_runner(FIXTURE), load_file(str(FIXTURE / "inputs.safetensors")))
    diff = _max_diff(out, load_file(str(FIXTURE / "expected.safetensors")))
    print(f"rdt_tiny max |diff|: pred {diff['pred']:.2e}, actions {diff['actions']:.2e}")
    assert diff["pred"] < 1e-5 and diff["actions"] < 1e-4


def test_replay_command_through_a_subprocess(tmp_path):
    out_file = tmp_path / "out.safetensors"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "atlas.models.rdt.replay", str(FIXTURE),
                           str(FIXTURE / "inputs.safetensors"), str(out_file)],
                          capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = load_file(str(out_file))
    assert set(out) == {"pred", "actions"}
    diff = _max_diff(out, load_file(str(FIXTURE / "expected.safetensors")))
    assert diff["pred"] < 1e-5 and diff["actions"] < 1e-4


def test_replay_command_names_a_bad_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "atlas.models.rdt.replay", str(tmp_path),
                           str(FIXTURE / "inputs.safetensors"), str(tmp_path / "out.safetensors")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and str(tmp_path / "config.json") in proc.stderr


def test_safetensors_release_gives_the_same_outputs(tmp_path):
    folder = tmp_path / "rdt"
    folder.mkdir()
    shutil.copy(FIXTURE / "config.json", folder / "config.json")
    save_file(torch.load(FIXTURE / "pytorch_model.bin", weights_only=True), str(folder / "model.safetensors"))
    inputs = load_file(str(FIXTURE / "inputs.safetensors"))
    a, b = replay(load_runner(folder), inputs), replay(load_runner(FIXTURE), inputs)
    assert torch.equal(a["pred"], b["pred"]) and torch.equal(a["actions"], b["actions"])


def test_config_round_trips_to_what_rdt_writes():
    data = json.loads((FIXTURE / "config.json").read_text())
    assert json.loads(json.dumps(read_release_config(FIXTURE).to_runner_kwargs())) == data


def test_position_tables_are_rdts_sin_cos():
    """The release's tables are RDT's sin-cos init plus N(0, 0.02): ours lie within a few sigma of them
    (a wrong layout, e.g. sin/cos swapped or the modality code missing, is off by ~1)."""
    state = load_release_state_dict(FIXTURE)
    shape = read_release_config(FIXTURE)
    ours = {
        "model.x_pos_embed": input_table(shape.hidden_size, shape.pred_horizon),
        "model.lang_cond_pos_embed": condition_table(shape.hidden_size, shape.max_lang_cond_len,
                                                     shape.lang_pos_embed_config),
        "model.img_cond_pos_embed": condition_table(shape.hidden_size, shape.img_cond_len, shape.img_pos_embed_config),
    }
    for name, table in ours.items():
        residual = state[name][0] - table
        assert residual.abs().max() < 0.12 and residual.std() < 0.03, name


def test_diffusers_cross_check_when_installed():
    """Optional: where diffusers happens to be installed, its scheduler agrees with ours step by step."""
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                                  prediction_type="sample")
    sched.set_timesteps(5)
    ours = NoiseSchedule("squaredcos_cap_v2", 1000, "sample")
    assert [int(t) for t in sched.timesteps] == ours.timesteps(5)
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(8, 8, generator=g) * 0.3

    def predict(x, t):
        return torch.tanh(x @ weights) * (1 + t.float() / 1000)

    x = torch.randn(2, 4, 8, generator=g)
    ref = x.clone()
    for t in sched.timesteps:
        ref = sched.step(predict(ref, t.view(1)), t, ref).prev_sample
    assert torch.allclose(ours.sample(predict, x, 5), ref, atol=1e-5)


def _copy_fixture(tmp_path: Path) -> Path:
    folder = tmp_path / "rdt"
    shutil.copytree(FIXTURE, folder)
    for f in folder.iterdir():
        f.chmod(0o644)
    folder.chmod(0o755)
    return folder


def test_damaged_and_foreign_folders_name_the_file(tmp_path):
    folder = _copy_fixture(tmp_path)
    (folder / "pytorch_model.bin").write_bytes((FIXTURE / "pytorch_model.bin").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        load_release_state_dict(folder)

    torch.save({"model.x_pos_embed": torch.zeros(1), "vision.weight": torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="vision.weight"):
        load_release_state_dict(folder)

    (folder / "config.json").write_text('{"action_dim": 16}')
    with pytest.raises(ConfigError, match="config.json"):
        read_release_config(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_release_config(folder)
    data = json.loads((FIXTURE / "config.json").read_text())
    data["config"]["lang_adaptor"] = "mlp2x_relu"
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="mlp2x_relu"):
        read_release_config(folder)
    del data["config"]["rdt"]
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="'rdt' is missing"):
        read_release_config(folder)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch /tmp/atlas_rdt_pickle_ran",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    folder = _copy_fixture(tmp_path)
    marker = Path("/tmp/atlas_rdt_pickle_ran")
    marker.unlink(missing_ok=True)
    torch.save({"model.x_pos_embed": _RunsCode()}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        load_release_state_dict(folder)
    assert not marker.exists()


def test_atlas_policy_folder_is_not_an_rdt_release(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": {}, "meta": {}}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert not is_rdt_release(tmp_path) and not is_rdt_release(tmp_path / "nothing")
