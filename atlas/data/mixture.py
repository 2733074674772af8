"""`data.mixture`: several datasets drawn by weight through the one seeded, sharded, resumable sample stream.

Weights become index space, not a second random draw: dataset k of n_k samples gets s_k = round(w_k * N)
"slots" with N = max_k n_k / w_k, so every sample of every dataset has at least one slot and slot j of
dataset k is its sample j mod n_k. `SampleStream` permutes the slots each epoch like any dataset's
indices, so a run sees w_k of its samples from dataset k (exactly, per epoch), ranks and micro-batch
splits still never change what is seen, and resuming at a stream position replays the same order.

Each dataset keeps its own statistics and normalization modes; samples are normalized in the loader (with the
same `Normalizer` code the single-dataset transform uses) and zero-padded to the largest state and action
sizes, with `state_dim_mask` / `action_dim_mask` saying which entries are real (the loss skips the rest;
`model.unified_dim` pads further in the policy). `dataset_index` names the source of every sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from atlas.config.errors import ConfigError
from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.data.episodes import DatasetMeta, StepDataset
from atlas.data.mixture_normalizer import MixtureNormalizer
from atlas.data.normalize import Normalizer
from atlas.data.registry import DataBundle, PreparedDataset, epoch_line, meta_of, prepare_dataset
from atlas.data.transforms import BatchTransform


class SlotRanges(list):
    """`episode_ranges` of a mixture: one (first slot, slots) range per dataset, with the datasets' names as
    `groups`, so that `SampleStream` can report the fraction drawn from each (`mixture_fractions`)."""

    def __init__(self, ranges: list[tuple[int, int]], names: list[str]) -> None:
        super().__init__(ranges)
        self.groups = (list(names), [start for start, _ in ranges], [count for _, count in ranges])


@dataclass
class Member:
    name: str
    dataset: StepDataset
    normalizer: Normalizer


class MixtureDataset(Dataset):
    """The members' samples in one index space of slots (weighted, or each member once when `weights` is None)."""

    def __init__(self, members: list[Member], state_dim: int, action_dim: int, weights: list[float] | None) -> None:
        self.members = members
        self.state_dim, self.action_dim = state_dim, action_dim
        sizes = np.array([len(m.dataset) for m in members], dtype=np.int64)
        if weights is None:
            slots = sizes
        else:
            w = np.asarray(weights, dtype=np.float64)
            total = float(np.max(sizes / w))
            slots = np.maximum(np.round(w * total).astype(np.int64), sizes)
        self.sizes, self.slots = sizes, slots
        self.starts = np.concatenate([[0], np.cumsum(slots)[:-1]]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.slots.sum())

    @property
    def episode_ranges(self) -> SlotRanges:
        return SlotRanges([(int(s), int(n)) for s, n in zip(self.starts, self.slots)], [m.name for m in self.members])

    def locate(self, index: int) -> tuple[int, int]:
        """Slot → (member, its sample index)."""
        k = int(np.searchsorted(self.starts, index, side="right") - 1)
        return k, int((index - self.starts[k]) % self.sizes[k])

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([int(index)])[0]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        flat = np.asarray(indices, dtype=np.int64).reshape(-1)
        if ((flat < 0) | (flat >= len(self))).any():
            raise IndexError(f"sample out of range [0, {len(self)})")
        owner = np.searchsorted(self.starts, flat, side="right") - 1
        local = (flat - self.starts[owner]) % self.sizes[owner]
        out: list[dict | None] = [None] * len(flat)
        for k in np.unique(owner).tolist():
            where = np.flatnonzero(owner == k)
            for position, sample in zip(where, self._member_samples(k, local[where].tolist())):
                out[int(position)] = sample
        return out

    def _member_samples(self, k: int, indices: list[int]) -> list[dict]:
        member = self.members[k]
        samples = member.dataset.__getitems__(indices)
        state = self._normalized(member, "state", np.stack([s["state"] for s in samples]))
        action = self._normalized(member, "action", np.stack([s["action"] for s in samples]))
        state_mask = np.arange(self.state_dim) < samples[0]["state"].shape[-1]
        action_mask = np.arange(self.action_dim) < samples[0]["action"].shape[-1]
        for i, sample in enumerate(samples):
            sample.update(state=_pad(state[i], self.state_dim), action=_pad(action[i], self.action_dim),
                          state_dim_mask=state_mask, action_dim_mask=action_mask, dataset_index=k)
        return samples

    @staticmethod
    def _normalized(member: Member, key: str, values: np.ndarray) -> np.ndarray:
        return member.normalizer.normalize(key, torch.from_numpy(values)).numpy()


def _pad(values: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((*values.shape[:-1], size), dtype=np.float32)
    out[..., : values.shape[-1]] = values
    return out


def _check_compatible(prepared: list[tuple[str, PreparedDataset, DatasetMeta]]) -> None:
    """Images are stacked per camera position: every dataset needs the same number of cameras and image size."""
    first_name, _, first = prepared[0]
    for name, _, meta in prepared[1:]:
        if len(meta.cameras) != len(first.cameras) or (meta.cameras and meta.image_size != first.image_size):
            raise ConfigError(
                f"data.mixture: {name} has cameras {meta.cameras} at {meta.image_size}, {first_name} has "
                f"{first.cameras} at {first.image_size}; mixed datasets need the same number of cameras and image "
                "size (choose them per entry with image_keys, [] for none)")


def build_mixture(cfg: DataConfig, loading: DataLoadingConfig, action_horizon: int, seed: int,
                  effective_batch_size: int | None = None) -> DataBundle:
    """Every entry prepared like a single dataset (own split and statistics), then one weighted dataset."""
    if cfg.sampling != "all_steps":
        raise ConfigError("data.sampling: random_episode is not supported with data.mixture (the weights decide "
                          "the draw); use all_steps")
    entries = cfg.dataset_configs()
    prepared, lines = [], []
    for name, _, sub in entries:
        p = prepare_dataset(sub, loading, seed)
        prepared.append((name, p, meta_of(p.source, p.train_ids, p.trained)))
        lines += [f"data[{name}]: {line.removeprefix('data: ')}" for line in p.lines]
    _check_compatible(prepared)
    tasks = sorted({t for _, p, _ in prepared for t in p.trained})
    state_dim = max(meta.state_dim for *_, meta in prepared)
    action_dim = max(meta.action_dim for *_, meta in prepared)

    def members(split: str) -> list[Member]:
        out = []
        for (name, _, sub), (_, p, _) in zip(entries, prepared):
            ids = p.train_ids if split == "train" else p.val_ids
            if ids:
                dataset = StepDataset(p.source, ids, action_horizon, cfg.obs_horizon, tasks)
                out.append(Member(name, dataset, Normalizer(p.stats, sub.normalization_modes())))
        return out

    train = MixtureDataset(members("train"), state_dim, action_dim, [w for _, w, _ in entries])
    val_members = members("val")
    val = MixtureDataset(val_members, state_dim, action_dim, None) if val_members else None
    described = [{"name": name, "stats": p.stats, "modes": sub.normalization_modes(), "state_dim": meta.state_dim,
                  "action_dim": meta.action_dim, "tasks": list(p.trained)}
                 for (name, _, sub), (_, p, meta) in zip(entries, prepared)]
    normalizer = MixtureNormalizer(described, state_dim, action_dim)
    first = prepared[0][2]
    instructions: dict[str, str] = {}
    for *_, meta in prepared:
        for task, text in meta.instructions.items():
            instructions.setdefault(task, text)
    meta = DatasetMeta(state_dim, action_dim, list(first.cameras), first.image_size, tasks, instructions)
    for (name, weight, _), size, slots in zip(entries, train.sizes, train.slots):
        lines.append(f"data: mixture {name}: weight {weight:.3f}, {size} samples in {slots} slots "
                     f"({slots / len(train):.3f} of each epoch)")
    lines.append(f"data: mixture of {len(entries)} datasets: state {state_dim}, action {action_dim} (padded, masked)")
    lines.append(epoch_line(cfg, len(train), len(val) if val else 0, effective_batch_size))
    # samples arrive normalized per dataset: the transform adds only state noise and image handling
    identity = Normalizer({}, {"state": "none", "action": "none"})
    transform = BatchTransform(identity, cfg.state_noise_snr, cfg.image_aug)
    return DataBundle(train, val, normalizer, meta, lines, transform, "per dataset")
