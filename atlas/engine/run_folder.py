"""The run folder: refuse to overwrite a run or the user's files, find what to resume, set up train.log."""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from pathlib import Path

from atlas.config.errors import ConfigError
from atlas.engine.checkpoint import CheckpointStore, checkpoint_problem
from atlas.engine.run_lock import LOCK_NAME
from atlas.textfile import unwritable_reason

RUN_MARKERS = ("metrics.jsonl", "checkpoints", "plan.json")
# Everything Atlas writes at the top of a run folder (train, report, eval --out default, the lock).
ATLAS_ENTRIES = frozenset({*RUN_MARKERS, "config.yaml", "train.log", "tensorboard", "wandb", "report", "eval.json",
                           "videos", LOCK_NAME})
_LOG_LINE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR|CRITICAL|DEBUG) ")


def _foreign_entries(run_dir: Path) -> list[str]:
    """Entries of the folder that Atlas did not write. Atlas's own names count only where they are Atlas's:
    a `config.yaml` without the `plan.json` written beside it is the user's, a `train.log` must start with
    Atlas's log format."""
    names = sorted(p.name for p in run_dir.iterdir())
    foreign = [n for n in names if n not in ATLAS_ENTRIES and not (n.startswith("eval") and n.endswith(".json"))]
    if "config.yaml" in names and "plan.json" not in names:
        foreign.append("config.yaml (no plan.json beside it: not a config Atlas resolved)")
    if "train.log" in names and not _is_atlas_log(run_dir / "train.log"):
        foreign.append("train.log (not in Atlas's log format)")
    return foreign


def _is_atlas_log(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head == b"" or bool(_LOG_LINE.match(head))


def check_run_folder(run_dir: str | Path, resuming: bool) -> None:
    """Refuse a run folder that would cost the user data: a file in its place, anything Atlas did not write
    (their own config.yaml, the folder of --config, a home folder), or, for a fresh run, an earlier run.
    Called before anything is written into the folder (like `git clone` into a non-empty directory)."""
    run_dir = Path(run_dir)
    try:
        exists = run_dir.exists()
    except OSError as err:
        raise ConfigError(f"--output-dir {run_dir}: {err.strerror or err}") from None
    if exists and not run_dir.is_dir():
        raise ConfigError(f"--output-dir {run_dir} is a file, not a folder; choose a folder for the run")
    if not exists:
        reason = unwritable_reason(run_dir / "train.log")
        if reason:
            raise ConfigError(f"--output-dir {run_dir}: cannot create the run folder: {reason}")
        return
    try:
        foreign = _foreign_entries(run_dir)
    except OSError as err:
        raise ConfigError(f"--output-dir {run_dir} cannot be read: {err.strerror or err}") from None
    if foreign:
        shown = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
        raise ConfigError(
            f"--output-dir {run_dir} holds files Atlas did not write ({shown}); Atlas would overwrite or mix "
            "its files with them. Choose an empty or new folder for the run"
        )
    if not resuming:
        used = [m for m in RUN_MARKERS if (run_dir / m).exists()]
        if used:
            raise ConfigError(
                f"{run_dir} already holds a run ({', '.join(used)}); pass --resume auto to continue it, "
                "or choose another --output-dir"
            )
    reason = unwritable_reason(run_dir / "train.log")
    if reason:
        raise ConfigError(f"--output-dir {run_dir}: cannot write the run there: {reason}")


def _trainer_state_fields() -> list[str]:
    """The keys the loop's TrainerState has (a checkpoint with others was not written by this Atlas)."""
    from atlas.engine.checkpoint import TrainerState

    return [f.name for f in dataclasses.fields(TrainerState)]


def resolve_resume(run_dir: Path, resume: str | None, warn) -> Path | None:
    """The checkpoint folder to resume from, or None for a fresh run (which needs an empty folder)."""
    check_run_folder(run_dir, resuming=resume is not None)
    fields = _trainer_state_fields()
    if resume is None:
        return None
    if resume == "auto":
        found = CheckpointStore(run_dir / "checkpoints").newest_complete(warn=warn, state_fields=fields)
        if found is None:
            warn(f"--resume auto: no complete checkpoint in {run_dir / 'checkpoints'}; starting from scratch")
            return None
    else:
        found = Path(resume)
        if found.is_dir() and (found / "checkpoints").is_dir():
            found = CheckpointStore(found / "checkpoints").newest_complete(warn=warn, state_fields=fields) or found
    problem = checkpoint_problem(found, fields)
    if problem:
        raise ConfigError(f"--resume {resume}: {problem}")
    return found


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
        try:
            if run_dir.exists() and not run_dir.is_dir():
                raise ConfigError(f"--output-dir {run_dir} is a file, not a folder; choose a folder for the run")
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # not a directory on the way, name too long, read-only, permission
            raise ConfigError(f"--output-dir {run_dir}: cannot create the run folder: {err.strerror or err}") from None
        # delay: the file is created at the first log line, after check_run_folder (in resolve_resume) has run
        file_handler = logging.FileHandler(run_dir / "train.log", delay=True)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(file_handler)
    return logger
