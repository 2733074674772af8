"""The run folder: refuse to overwrite a run by accident, find what to resume, set up train.log."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from atlas.config.errors import ConfigError
from atlas.engine.checkpoint import CheckpointStore

RUN_MARKERS = ("metrics.jsonl", "checkpoints", "plan.json")


def resolve_resume(run_dir: Path, resume: str | None, warn) -> Path | None:
    """The checkpoint folder to resume from, or None for a fresh run (which needs an empty folder)."""
    store = CheckpointStore(run_dir / "checkpoints")
    if resume is None:
        used = [m for m in RUN_MARKERS if (run_dir / m).exists()]
        if used:
            raise ConfigError(
                f"{run_dir} already holds a run ({', '.join(used)}); pass --resume auto to continue it, "
                "or choose another --output-dir"
            )
        return None
    if resume == "auto":
        found = store.newest_complete(warn=warn)
        if found is None:
            warn(f"--resume auto: no complete checkpoint in {run_dir / 'checkpoints'}; starting from scratch")
        return found
    path = Path(resume)
    if path.is_dir() and (path / "checkpoints").is_dir():
        path = CheckpointStore(path / "checkpoints").newest_complete(warn=warn) or path
    from atlas.engine.checkpoint import verify

    problem = verify(path) if path.is_dir() else f"{path} is not a folder"
    if problem:
        raise ConfigError(f"--resume {resume}: {problem}")
    return path


class _TqdmHandler(logging.StreamHandler):
    """Print log lines without breaking the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never crash training
            self.handleError(record)


def setup_logging(run_dir: Path, is_main: bool) -> logging.Logger:
    logger = logging.getLogger("atlas")
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    console = _TqdmHandler()
    console.setLevel(logging.INFO if is_main else logging.WARNING)
    console.setFormatter(logging.Formatter("[atlas] %(message)s"))
    logger.addHandler(console)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(run_dir / "train.log")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(file_handler)
    return logger
