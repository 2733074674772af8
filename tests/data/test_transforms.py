"""Device transforms: state-noise SNR as configured, augmentation reproducible from the RNG and off for validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from data_h5files import write_robomimic

from atlas.data.config import DataConfig, DataLoadingConfig, ImageAugConfig
from atlas.data.registry import build_data
from atlas.data.transforms import BatchTransform


def _states_batch(bundle, n: int = 2048) -> dict:
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(bundle.train), size=n)
    samples = [bundle.train[int(i)] for i in idx]
    return {
        "state": torch.from_numpy(np.stack([s["state"] for s in samples])),
        "action": torch.from_numpy(np.stack([s["action"] for s in samples])),
    }


@pytest.mark.parametrize("normalization", ["mean_std", "min_max"])
def test_state_noise_snr_is_measured_within_half_a_db(tmp_path, normalization):
    path = write_robomimic(tmp_path / "mw.hdf5", lengths=(200, 150, 250))
    cfg = DataConfig(format="robomimic", path=str(path), val_ratio=0, state_noise_snr=40.0, normalization=normalization, image_keys=[])
    bundle = build_data(cfg, DataLoadingConfig(), 2, 0)
    batch = _states_batch(bundle)
    torch.manual_seed(0)
    noisy = bundle.transform(batch, torch.device("cpu"), train=True)["state"]
    clean = bundle.transform(batch, torch.device("cpu"), train=False)["state"]
    noise = noisy - clean
    assert noise.abs().max() > 0
    snr = 10 * math.log10(clean.var(dim=(0, 1)).mean().item() / noise.var(dim=(0, 1)).mean().item())
    assert abs(snr - 40.0) < 0.5, snr
    no_noise = BatchTransform(bundle.normalizer)(batch, torch.device("cpu"), train=True)["state"]
    assert torch.equal(no_noise, clean)


def _image_batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "state": torch.zeros(6, 2, 3),
        "action": torch.zeros(6, 4, 2),
        "images": torch.randint(0, 256, (6, 2, 2, 3, 24, 24), generator=g, dtype=torch.uint8),
    }


def _identity_normalizer():
    from atlas.data.normalize import Normalizer

    return Normalizer({}, {})


def test_image_augmentation_follows_the_global_rng_and_is_off_for_validation():
    transform = BatchTransform(_identity_normalizer(), image_aug=ImageAugConfig(enabled=True))
    batch = _image_batch()
    cpu = torch.device("cpu")
    torch.manual_seed(7)
    a = transform(batch, cpu, train=True)["images"]
    state = torch.get_rng_state()
    b = transform(batch, cpu, train=True)["images"]
    torch.manual_seed(7)
    assert torch.equal(transform(batch, cpu, train=True)["images"], a)  # same seed: same draws (every rank)
    torch.set_rng_state(state)
    assert torch.equal(transform(batch, cpu, train=True)["images"], b)  # restored RNG: resume replays
    assert not torch.equal(a, b)
    plain = batch["images"].float() / 255
    assert a.shape == plain.shape and a.min() >= 0 and a.max() <= 1 and not torch.allclose(a, plain)
    assert torch.equal(transform(batch, cpu, train=False)["images"], plain)


def test_crop_is_shared_by_the_history_frames_of_a_sample():
    transform = BatchTransform(
        _identity_normalizer(),
        image_aug=ImageAugConfig(enabled=True, brightness=0, contrast=0, saturation=0, hue=0, crop_scale=(0.3, 0.5)),
    )
    batch = _image_batch()
    batch["images"][:, 1] = batch["images"][:, 0]  # two identical history frames
    batch["images"][:, :, 1] = batch["images"][:, :, 0]  # and the same picture on both cameras
    torch.manual_seed(1)
    out = transform(batch, torch.device("cpu"), train=True)["images"]
    assert torch.allclose(out[:, 0], out[:, 1])
    # cameras draw their own crop: the same picture comes out different on the two cameras of every sample
    for sample in range(out.shape[0]):
        assert not torch.allclose(out[sample, :, 0], out[sample, :, 1], atol=1e-3), sample
    aug = ImageAugConfig(enabled=True, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), brightness=0, contrast=0,
                         saturation=0, hue=0)
    full = BatchTransform(_identity_normalizer(), image_aug=aug)
    assert torch.allclose(full(batch, torch.device("cpu"), True)["images"], batch["images"].float() / 255, atol=1e-5)
