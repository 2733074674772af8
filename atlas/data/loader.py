"""The training data loader: this rank's micro-batches of each optimizer step, read through a DataLoader in
the stream order of the sampler (atlas/data/sampler.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from atlas.data.collate import collate_samples
from atlas.data.config import DataLoadingConfig
from atlas.data.sampler import EffectiveBatchSampler, SampleStream


@dataclass(frozen=True)
class BatchSplit:
    """How one optimizer step's samples are cut: per micro-batch, per rank, over the world."""

    micro_batch_size: int
    accumulation: int
    world_size: int
    rank: int


class StepBatches:
    """`next_step()` returns this rank's micro-batches of the next optimizer step (collated, on CPU)."""

    def __init__(self, dataset, stream: SampleStream, split: BatchSplit, start_position: int,
                 loading: DataLoadingConfig, pin_memory: bool) -> None:
        self.dataset = dataset
        self.stream = stream
        self.world_size = split.world_size
        self.rank = split.rank
        self.loading = loading
        self.pin_memory = pin_memory
        self._loader_iter = None
        self.reset(split.micro_batch_size, split.accumulation, start_position)

    def reset(self, micro_batch_size: int, accumulation: int, position: int) -> None:
        """(Re)start reading at stream `position` with a new split (after resume or OOM back-off)."""
        self.micro = micro_batch_size
        self.accumulation = accumulation
        self.position = position
        sampler = EffectiveBatchSampler(
            self.stream, micro_batch_size, accumulation, self.world_size, self.rank, start_position=position
        )
        workers = self.loading.num_workers
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=collate_samples,
            pin_memory=self.pin_memory and self.loading.pin_memory,
            prefetch_factor=self.loading.prefetch_factor if workers > 0 else None,
            persistent_workers=self.loading.persistent_workers and workers > 0,
            # its own generator: creating an iterator must not draw from the global RNG, or a resumed
            # run (which creates one more iterator) would drift from an uninterrupted one
            generator=torch.Generator().manual_seed(self.stream.seed * 1_000_003 + position + self.rank),
        )
        self.close()
        self._loader_iter = iter(loader)

    @property
    def effective_batch_size(self) -> int:
        return self.micro * self.accumulation * self.world_size

    def next_step(self) -> list[dict]:
        micro_batches = [next(self._loader_iter) for _ in range(self.accumulation)]
        self.position += self.effective_batch_size
        return micro_batches

    def close(self) -> None:
        if self._loader_iter is not None:
            shutdown = getattr(self._loader_iter, "_shutdown_workers", None)
            if shutdown:
                shutdown()
            self._loader_iter = None


def resplit(micro_batches: list[dict], micro_batch_size: int) -> list[dict]:
    """The same samples in smaller micro-batches (OOM back-off redoes a step without changing it)."""
    merged = {}
    for key in micro_batches[0]:
        values = [mb[key] for mb in micro_batches]
        merged[key] = torch.cat(values) if torch.is_tensor(values[0]) else [v for vs in values for v in vs]
    total = len(merged["action"])
    out = []
    for start in range(0, total, micro_batch_size):
        out.append({k: v[start : start + micro_batch_size] for k, v in merged.items()})
    return out


def valid_elements(batch: dict) -> int:
    """Action elements that count in the loss: unpadded rows × action dimension."""
    return int(batch["action_mask"].sum()) * int(batch["action"].shape[-1])
