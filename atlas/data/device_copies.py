"""Host-to-GPU copies of a step's micro-batches, one micro-batch ahead of the compute.

On CUDA the collated micro-batches come from pinned memory (DataLoader pin_memory). Copied on the
compute stream, micro-batch i+1's copy would wait behind micro-batch i's kernels; on a side stream it
runs on the copy engine while they do. `ahead(micro_batches)` yields each micro-batch already on the
device: before yielding micro-batch i it starts i+1's copy, and the compute stream waits on the copy
stream only for the batch it is about to use. `record_stream` tells the caching allocator that the
compute stream uses those tensors, so their memory is not reused while kernels may still read them.

On the CPU (and any non-CUDA device) nothing is copied: the batches pass through and the transform's
`.to(device)` is a no-op. The copies add no host sync: nothing here waits for the device.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class DeviceCopies:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    @property
    def overlapped(self) -> bool:
        """Whether copies run beside the compute (CUDA), for the run's log."""
        return self._stream is not None

    def _start_copy(self, batch: dict) -> dict:
        with torch.cuda.stream(self._stream):
            return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def ahead(self, micro_batches: list[dict]) -> Iterator[dict]:
        if self._stream is None or not micro_batches:
            yield from micro_batches
            return
        compute = torch.cuda.current_stream(self.device)
        pending = self._start_copy(micro_batches[0])
        for i in range(len(micro_batches)):
            compute.wait_stream(self._stream)
            ready = pending
            for value in ready.values():
                if torch.is_tensor(value) and value.device.type == "cuda":
                    value.record_stream(compute)
            if i + 1 < len(micro_batches):
                pending = self._start_copy(micro_batches[i + 1])
            yield ready
