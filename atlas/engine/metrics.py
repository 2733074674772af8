"""Metric sinks of rank 0: metrics.jsonl, TensorBoard event files, optional wandb."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from atlas.units import GIB


def gpu_memory_peaks(device: torch.device) -> dict[str, float]:
    """Peak CUDA bytes since the run began, in GiB: what the tensors held (allocated) and what the caching
    allocator took from the GPU (reserved); `atlas plan` predicts the first plus a margin. Empty off CUDA."""
    if device.type != "cuda":
        return {}
    return {"gpu_peak_allocated_gib": round(torch.cuda.max_memory_allocated(device) / GIB, 3),
            "gpu_peak_reserved_gib": round(torch.cuda.max_memory_reserved(device) / GIB, 3)}


class MetricLogger:
    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool = True, wandb_cfg: dict | None = None) -> None:
        self.enabled = enabled
        self._jsonl = None
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        self._jsonl = open(run_dir / "metrics.jsonl", "a", buffering=1)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        if wandb_cfg:
            try:
                import wandb
            except ImportError as err:
                raise RuntimeError("logging.wandb: true needs the wandb extra: pip install 'atlas-vla[wandb]'") from err
            self._wandb = wandb.init(dir=str(run_dir), **wandb_cfg)

    def log(self, metrics: dict, step: int) -> None:
        if not self.enabled:
            return
        record = {"step": step, **metrics}
        self._jsonl.write(json.dumps(record) + "\n")
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                if self._tb is not None:
                    self._tb.add_scalar(key, value, step)
        if self._tb is not None:
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(metrics, step=step)

    def close(self) -> None:
        if self._jsonl:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(path: Path) -> tuple[list[dict], int]:
    """metrics.jsonl read back: (records, number of unreadable lines). The one reader (report, benchmarks,
    tests); a half-written last line is expected while training runs."""
    if not path.is_file():
        return [], 0
    records, skipped = [], 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                skipped += 1
    return records, skipped


def metrics_records(run_dir: str | Path) -> list[dict]:
    """Every readable record of a run folder's metrics.jsonl."""
    return read_metrics(Path(run_dir) / "metrics.jsonl")[0]
