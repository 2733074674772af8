"""Which samples each process reads, in which order: a global stream cut into effective batches.

The stream is epoch after epoch of the dataset's indices (a seeded permutation for `all_steps`, or
RDT's episode-then-step draw for `random_episode`). Optimizer step k consumes stream positions
[k*E, (k+1)*E) where E is the effective batch; rank r takes the r-th of `world_size` equal slices and
cuts it into `accumulation` micro-batches. So the samples of a step never depend on how the batch is
split (32x1 and 8x4 see the same samples), ranks never overlap, and resuming at a stream position
continues exactly the same order, whatever the world size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class SampleStream:
    """Deterministic infinite sequence of dataset indices, addressable by global position."""

    def __init__(
        self,
        num_samples: int,
        seed: int,
        mode: str = "all_steps",
        episode_ranges: Sequence[tuple[int, int]] | None = None,
        shuffle: bool = True,
    ) -> None:
        if num_samples <= 0:
            raise ValueError("the dataset is empty: no (episode, step) samples to train on")
        self.num_samples = num_samples
        self.seed = seed
        self.mode = mode
        self.episode_ranges = list(episode_ranges) if episode_ranges is not None else [(0, num_samples)]
        # a mixture's ranges carry its datasets (names, first slots, slot counts): see atlas/data/mixture.py
        self.groups = getattr(episode_ranges, "groups", None)
        self.shuffle = shuffle
        self._cache: dict[int, np.ndarray] = {}

    def epoch(self, epoch: int) -> np.ndarray:
        """All indices of one epoch; every (episode, t) exactly once for all_steps."""
        if epoch not in self._cache:
            rng = np.random.default_rng([self.seed, epoch])
            if self.mode == "random_episode":
                starts = np.array([s for s, _ in self.episode_ranges])
                lengths = np.array([n for _, n in self.episode_ranges])
                episodes = rng.integers(0, len(starts), size=self.num_samples)
                offsets = (rng.random(self.num_samples) * lengths[episodes]).astype(np.int64)
                order = starts[episodes] + offsets
            elif self.shuffle:
                order = rng.permutation(self.num_samples)
            else:
                order = np.arange(self.num_samples)
            self._cache = {epoch: order}
        return self._cache[epoch]

    def take(self, start: int, count: int) -> np.ndarray:
        """Indices at global positions [start, start+count), crossing epoch boundaries."""
        out = []
        while count > 0:
            epoch, offset = divmod(start, self.num_samples)
            chunk = self.epoch(epoch)[offset : offset + count]
            out.append(chunk)
            start += len(chunk)
            count -= len(chunk)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


    def mixture_fractions(self, position: int) -> dict[str, float]:
        """{"mixture/<name>": fraction of the samples at stream positions [0, position) drawn from that dataset};
        empty for a single dataset. Whole epochs hold each dataset's slots exactly; only the current epoch's
        prefix is counted."""
        if self.groups is None or position <= 0:
            return {}
        names, starts, slots = self.groups
        full, offset = divmod(int(position), self.num_samples)
        counts = full * np.asarray(slots, dtype=np.int64)
        if offset:
            owner = np.searchsorted(np.asarray(starts), self.epoch(full)[:offset], side="right") - 1
            counts = counts + np.bincount(owner, minlength=len(names))
        return {f"mixture/{name}": float(c) / position for name, c in zip(names, counts)}


class EffectiveBatchSampler(Sampler[list[int]]):
    """Yields this rank's micro-batches, step after step, starting at optimizer step `start_step`."""

    def __init__(
        self,
        stream: SampleStream,
        micro_batch_size: int,
        gradient_accumulation_steps: int,
        world_size: int = 1,
        rank: int = 0,
        start_position: int = 0,
        max_steps: int | None = None,
    ) -> None:
        self.stream = stream
        self.micro = micro_batch_size
        self.accumulation = gradient_accumulation_steps
        self.world_size = world_size
        self.rank = rank
        self.start_position = start_position
        self.max_steps = max_steps

    @property
    def effective_batch_size(self) -> int:
        return self.micro * self.accumulation * self.world_size

    def step_indices(self, position: int) -> list[list[int]]:
        """Micro-batches of this rank for the effective batch starting at stream `position`."""
        per_rank = self.micro * self.accumulation
        chunk = self.stream.take(position + self.rank * per_rank, per_rank)
        return [chunk[i * self.micro : (i + 1) * self.micro].tolist() for i in range(self.accumulation)]

    def __iter__(self) -> Iterator[list[int]]:
        position = self.start_position
        steps = 0
        while self.max_steps is None or steps < self.max_steps:
            yield from self.step_indices(position)
            position += self.effective_batch_size
            steps += 1

    def __len__(self) -> int:
        if self.max_steps is None:
            raise TypeError("infinite sampler has no length")
        return self.max_steps * self.accumulation


def shard_sequential(num_samples: int, batch_size: int, world_size: int, rank: int) -> list[list[int]]:
    """Validation batches of one rank: indices r, r+W, ... so ranks cover the split without overlap."""
    mine = list(range(rank, num_samples, world_size))
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
