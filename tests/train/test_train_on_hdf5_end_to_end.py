"""Five optimizer steps of the real loop on each HDF5 layout (JPEG images included), with workers."""

from __future__ import annotations

import pytest

from atlas.config import load_config
from atlas.engine.metrics import metrics_records
from atlas.train import train
from tests.data.data_h5files import write_aloha, write_robomimic


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["robomimic", "aloha"])
def test_five_training_steps(tmp_path, layout):
    if layout == "robomimic":
        path = write_robomimic(tmp_path / "mw.hdf5", tasks={"reach-v3": (0.0, 3), "push-v3": (1.0, 3)})
    else:
        path = write_aloha(tmp_path / "rdt", episodes=4)
    overrides = [
        f"data.format={layout}",
        f"data.path={path}",
        "data.batch_size=4",
        "data.state_noise_snr=40",
        "data.image_aug=true",
        "data_loading.num_workers=2",
        "data_loading.pin_memory=false",
        "training.max_steps=5",
        "training.warmup_steps=0",
        "training.val_interval=5",
        "training.checkpoint_interval=5",
        "training.ema.enabled=false",
        "logging.tensorboard=false",
        "logging.progress_bar=false",
    ]
    cfg = load_config(None, overrides)
    train(cfg, tmp_path / "run")
    lines = metrics_records(tmp_path / "run")
    steps = [line["step"] for line in lines if "loss" in line]
    assert steps and max(steps) == 5
    assert all(line["loss"] == line["loss"] for line in lines if "loss" in line)  # finite, not NaN
    log = (tmp_path / "run" / "train.log").read_text()
    assert "samples/epoch=" in log
    assert (tmp_path / "run" / "checkpoints" / "latest").exists()
