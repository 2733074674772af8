"""Checkpoints that a crash or kill can never leave half-written as `latest`.

A checkpoint is written into `checkpoints/.tmp-step_XXXXXXXX/`, every file fsynced, a manifest of
sizes and SHA-256 sums written last, then the folder is renamed to `step_XXXXXXXX` and only then the
`latest` (and, when asked, `best`) symlink is swapped atomically. Loading verifies the manifest and
falls back to the newest checkpoint that verifies, with a warning. Weights are safetensors; the other
files are JSON or `torch.save` of plain tensors/lists, read back with `weights_only=True` (a pickle that
would run code is refused, never executed). A save that fails (disk full, unwritable folder) removes
its temp folder and leaves every earlier checkpoint and pointer as they were (`SaveFailed`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import random
import re
import shutil
import threading
import zlib
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from atlas.engine.faults import SaveFaults
from atlas.engine.file_seal import EarlySeal, fsync_tree, sha256_of
from atlas.engine.frozen_weights import FrozenWeights
from atlas.engine.weight_files import FROZEN_NAME, REST_IN_FROZEN, REST_IN_RAW, WeightFileError, read_weights
from atlas.errors import AtlasError
from atlas.models.base import WEIGHTS_NAME as WEIGHTS  # the one name of a policy's weights file

MANIFEST = "manifest.json"
TRASH = ".trash-"  # a pruned folder, renamed out of the way and deleted in the background
POINTERS = ("latest", "best")


class CheckpointError(AtlasError, RuntimeError):
    """A checkpoint that cannot be used: named file, what is wrong with it."""


class SaveFailed(CheckpointError):
    """Writing a checkpoint failed; earlier checkpoints and `latest`/`best` are untouched."""


# What a failing write raises: the OS error itself, torch.save's RuntimeError ("file write failed"),
# safetensors' SafetensorError (a plain Exception subclass, named here without importing it).
def _is_write_error(err: BaseException) -> bool:
    return isinstance(err, (OSError, RuntimeError)) or type(err).__name__ == "SafetensorError"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def checkpoint_bytes(folder: Path) -> int:
    """Size of a checkpoint from its manifest (the files it sealed), else from the files present."""
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        return sum(int(entry["size"]) for entry in files.values())
    except (OSError, ValueError, KeyError, TypeError):
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def write_manifest(folder: Path, known: dict[str, str] | None = None) -> None:
    """Sizes and SHA-256 sums of every file; `known` {relative path: sha256}: digests the caller vouches for
    (a hard link to a file an earlier manifest already hashed: atlas/engine/frozen_weights.py; a file the save's
    helper thread hashed as soon as it was written: atlas/engine/file_seal.py)."""
    known = known or {}
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            rel = str(path.relative_to(folder))
            files[rel] = {"size": path.stat().st_size, "sha256": known.get(rel) or sha256_of(path)}
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=1))


STEP_DIR = re.compile(r"^step_(\d{8})$")  # exactly what step_dir_name writes: `step_00000005.bak` is not ours


def step_of_dir(path: Path) -> int | None:
    """The step of a folder named as Atlas names checkpoints, else None (a user's copy, a foreign folder)."""
    match = STEP_DIR.match(path.name)
    return int(match.group(1)) if match else None


def _manifest_files(folder: Path) -> tuple[dict | None, str | None]:
    """The manifest's {relative path: {size, sha256}} checked for shape, or (None, what is wrong)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return None, f"{folder} has no {MANIFEST} (incomplete write)"
    try:
        if manifest.stat().st_size > 16 * 2**20:
            return None, f"{manifest} is {manifest.stat().st_size} bytes, far larger than any manifest Atlas writes"
        data = json.loads(manifest.read_text())
    except (OSError, ValueError) as err:  # ValueError: invalid JSON and non-UTF-8 bytes
        return None, f"{manifest} is unreadable: {err}"
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return None, f"{manifest} is not an Atlas manifest (expected {{\"files\": {{path: {{size, sha256}}}}}})"
    if not files:
        return None, f"{manifest} lists no files"
    for rel, entry in files.items():
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            return None, f"{manifest} names {rel!r}, outside the checkpoint folder"
        if not isinstance(entry, dict) or not isinstance(entry.get("size"), int) or entry["size"] < 0:
            return None, f"{manifest}: the entry of {rel!r} has no valid size"
        if not isinstance(entry.get("sha256"), str):
            return None, f"{manifest}: the entry of {rel!r} has no sha256"
    return files, None


def verify(folder: Path, checksums: bool = True) -> str | None:
    """None when every file of the manifest is present with its size (and, with `checksums`, its SHA-256);
    else what is wrong. Without checksums it costs one stat per file (retention runs it at every save)."""
    files, problem = _manifest_files(folder)
    if problem:
        return problem
    for rel, entry in files.items():
        path = folder / rel
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != entry["size"]:
            return f"{path} has {path.stat().st_size} bytes, manifest says {entry['size']}"
        if checksums and sha256_of(path) != entry["sha256"]:
            return f"{path} fails its checksum"
    return None


def trainer_state_problem(folder: Path, fields: Collection[str] | None = None) -> str | None:
    """None when `trainer_state.json` is a JSON object the loop can continue from: known keys only (when
    `fields` is given), non-negative integer counters, a finite or null best_metric, and the step its folder
    is named after. Else what is wrong, so that a foreign or edited checkpoint is refused by name instead of
    failing inside the loop with a TypeError."""
    path = folder / TRAINER_STATE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return f"{path} is missing"
    except (OSError, ValueError) as err:
        return f"{path} is not valid JSON: {err}"
    if not isinstance(data, dict):
        return f"{path} must hold a JSON object, not {type(data).__name__}"
    unknown = sorted(set(data) - set(fields)) if fields is not None else []
    if unknown:
        return f"{path} has keys Atlas does not write: {', '.join(map(str, unknown))} (known: {', '.join(fields)})"
    for key, value in data.items():
        if key in ("best_metric",):
            if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value)):
                return f"{path}: best_metric={value!r} is not a finite number"
        elif key == "best_step":
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                return f"{path}: best_step={value!r} is not a step number"
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"{path}: {key}={value!r} must be a non-negative integer"
    step = data.get("step")
    if not isinstance(step, int) or step < 1:
        return f"{path}: step={step!r}; a checkpoint is written after step 1 or later"
    named = step_of_dir(folder)
    if named is not None and named != step:
        return f"{folder.name} holds step {step} (trainer_state.json): a renamed copy, not the checkpoint of step {named}"
    return None


def checkpoint_problem(folder: Path, state_fields: Collection[str] | None = None) -> str | None:
    """Everything resuming needs from a folder: the manifest verifies and the trainer state is sane."""
    if not folder.is_dir():
        return f"{folder} is not a folder"
    return verify(folder) or trainer_state_problem(folder, state_fields)


def rng_state() -> dict:
    """Every RNG the loop touches, as tensors and strings (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": json.dumps(random.getstate()),
        "numpy": json.dumps([np_state[0], np_state[1].tolist(), *np_state[2:]]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = json.loads(state["numpy"])
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_torch(path: Path):
    """A non-weight checkpoint file (optimizer, scaler, RNG): plain tensors and containers only.

    `weights_only=True` refuses any pickle that would import or call something; the refusal (and any
    other unreadable file) becomes a CheckpointError naming the file, not a traceback from the unpickler."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - UnpicklingError, RuntimeError (zip), EOFError ... all mean "unusable"
        raise CheckpointError(
            f"{path}: refused or unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "checkpoint files other than weights must hold plain tensors (loaded with weights_only=True)"
        ) from None


def load_weights(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A safetensors weight file, whole (an EMA file's rest read from its raw file: weight_files.py), or a
    CheckpointError naming it (truncated, not safetensors, ...)."""
    try:
        return read_weights(path, device)
    except WeightFileError as err:
        raise CheckpointError(f"{path}: {err}") from None


def read_pointer(checkpoints: Path, name: str) -> Path | None:
    """Where `checkpoints/<name>` (latest, best) points, if that is one of the folder's own step folders:
    the one pointer reader (the store, `atlas eval` and `atlas report` use it)."""
    root = Path(checkpoints)
    link = root / name
    if not link.is_symlink():
        return None
    try:
        target = (root / os.readlink(link)).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None
    if target.parent != root.resolve() or step_of_dir(target) is None or not target.is_dir():
        return None
    return target


def _is_own(folder: Path) -> bool:
    """Sealed by Atlas as the step it is named after: the manifest verifies by size, the trainer state (when
    there is one) holds that step. A user's renamed copy fails the second test and is never pruned."""
    if verify(folder, checksums=False) is not None:
        return False
    return not (folder / TRAINER_STATE).exists() or trainer_state_problem(folder) is None


def _delete_folders(folders: list[Path]) -> None:
    """The background half of retention: delete folders already renamed out of the store."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


class CheckpointStore:
    """The `checkpoints/` folder of a run: save, point, prune, find the newest complete one."""

    def __init__(self, root: str | Path, total_limit: int | None = None) -> None:
        self.root = Path(root)
        self.total_limit = total_limit
        self.faults = SaveFaults.from_env()
        self.writing: str | None = None  # the file of the save in progress being written (named if it fails)
        self._sealed: set[str] = set()  # folders this store committed: its own without reading their manifests
        self._deleter: Future | None = None  # the deletion of pruned folders in flight
        self._early = EarlySeal()  # checksums and flushes of the save's files, beside its later writes

    def step_dirs(self) -> list[Path]:
        """Checkpoint folders named exactly as Atlas names them, oldest first (anything else is left alone)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir()
                      if step_of_dir(p) is not None and p.is_dir() and not p.is_symlink())

    def pointer(self, name: str) -> Path | None:
        """Where `latest`/`best` point, if that is one of this store's own step folders."""
        return read_pointer(self.root, name)

    def set_pointer(self, name: str, target: Path) -> None:
        tmp = self.root / f".{name}.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target.name, tmp)
        os.replace(tmp, self.root / name)

    def tmp_dir(self, step: int) -> Path:
        return self.root / f".tmp-{step_dir_name(step)}"

    def begin(self, step: int) -> Path:
        """Fresh temp folder for step `step` (rank 0 calls this before any rank writes into it)."""
        self.wait_deletions()
        for pattern in (".tmp-step_*", f"{TRASH}step_*"):  # left by a killed save or prune; never pointed to
            for stale in self.root.glob(pattern) if self.root.is_dir() else []:
                shutil.rmtree(stale, ignore_errors=True)
        tmp = self.tmp_dir(step)
        self.writing = None
        tmp.mkdir(parents=True)
        self._early.start(tmp)
        return tmp

    def write_file(self, step: int, name: str, write: Callable[[], None], digest: bool = False) -> None:
        """Write one file (or a file and its small companions) of the save of `step`, `name` relative to the
        temp folder: a failure is then reported naming it (a full disk's OSError from write() names none).
        `digest`: a big file, hashed and flushed on the helper thread while the save writes on (the store that
        commits only: `begin` started it)."""
        self.writing = name
        write()
        self.faults.wrote(step, self.tmp_dir(step), name)
        self.writing = None
        if digest:
            self._early.written(name)

    def commit(self, step: int, best: bool = False, known: dict[str, str] | None = None) -> Path:
        """Seal the temp folder: manifest (`known`: digests already vouched for), fsync, rename, then swap
        `latest` (and `best`)."""
        tmp = self.tmp_dir(step)
        self.faults.begin_save()
        self.faults.at("files", step, tmp)
        known = known or {}
        digests, flushed = self._early.results(known)  # every file: hashed and flushed, the last ones in parallel
        self.write_file(step, MANIFEST, lambda: write_manifest(tmp, {**digests, **known}))
        fsync_tree(tmp, flushed, self._early.pool)  # the manifest and the folders
        self.faults.at("rename", step, tmp)
        final = self.root / step_dir_name(step)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        self._sealed.add(final.name)
        self.faults.at("pointer", step, final)
        self.set_pointer("latest", final)
        if best:
            self.set_pointer("best", final)
        self.prune()
        return final

    def save(self, step: int, write: Callable[[Path], None], best: bool = False) -> Path:
        """Single-process convenience: begin, let `write` fill the folder, commit."""
        tmp = self.begin(step)
        write(tmp)
        return self.commit(step, best=best)

    def abort(self, step: int) -> None:
        """Drop a failed save's temp folder (it only takes space; pointers never saw it)."""
        self._early.drain()
        shutil.rmtree(self.tmp_dir(step), ignore_errors=True)

    def save_failed(self, step: int, err: BaseException) -> SaveFailed:
        """The error to report for a failed save: what failed, the space it needs, what is still intact."""
        previous = self.pointer("latest")
        if previous is not None:
            need = f"needs about {human_bytes(checkpoint_bytes(previous))} (the size of {previous.name})"
        else:
            need = "needs about as much as one checkpoint (no earlier one to measure)"
        try:
            free = f"{human_bytes(shutil.disk_usage(self.root).free)} free on {self.root}"
        except OSError:
            free = f"free space on {self.root} unknown"
        kept = f"latest is still {previous.name}, intact" if previous is not None else "no earlier checkpoint exists"
        writing, self.writing = (f" (writing {self.writing})" if self.writing else ""), None
        return SaveFailed(f"could not write checkpoint {step_dir_name(step)}{writing}: {type(err).__name__}: {err}. "
                          f"A checkpoint {need}; {free}. Earlier checkpoints were left as they were ({kept}).")

    def guarded_write(self, step: int, write: Callable[[], None]) -> SaveFailed | None:
        """Run one rank's part of a save; a write error aborts the temp folder and comes back as SaveFailed."""
        try:
            write()
        except Exception as err:  # noqa: BLE001 - filtered just below; anything else is re-raised
            if not _is_write_error(err):
                raise
            failure = self.save_failed(step, err)
            self.abort(step)
            return failure
        return None

    def prune(self) -> list[Path]:
        """Remove the oldest sealed checkpoints beyond `total_limit`, never `latest`/`best`, never a folder
        whose manifest does not verify by size (Atlas did not write it, or it is someone's evidence). Each is
        renamed to `.trash-step_…` at once (gone from the store, atomically) and deleted by a background thread:
        the unlinks cost the training thread nothing; the next save, or the end of the run, waits for them."""
        if not self.total_limit:
            return []
        keep = {p for p in (self.pointer(n) for n in POINTERS) if p is not None}
        dirs = [p for p in self.step_dirs() if p.name in self._sealed or _is_own(p)]
        removed, trash = [], []
        for path in dirs:
            if len(dirs) - len(removed) <= self.total_limit:
                break
            if path.resolve() in keep:
                continue
            target = self.root / f"{TRASH}{path.name}"
            if target.exists():
                shutil.rmtree(target)
            os.replace(path, target)
            self._sealed.discard(path.name)
            removed.append(path)
            trash.append(target)
        if trash:
            self.wait_deletions()
            self._deleter = self._early.pool.submit(_delete_folders, trash)  # a warm helper thread, not a new one
        return removed

    def wait_deletions(self) -> None:
        """Join the background deletion of pruned folders, if one is in flight."""
        deleter, self._deleter = self._deleter, None
        if deleter is not None:
            deleter.result()

    def newest_complete(self, warn: Callable[[str], None] | None = None,
                        state_fields: Collection[str] | None = None) -> Path | None:
        """The newest step folder that verifies: normally `latest`. A kill between the rename and the
        pointer swap leaves a newer sealed folder than `latest` (used, with a note); a corrupt or
        truncated one is skipped with a warning naming what is wrong."""
        latest = self.pointer("latest")
        for path in reversed(self.step_dirs()):
            problem = verify(path)
            if problem is None and (path / TRAINER_STATE).exists():  # a renamed copy, a foreign or edited state
                problem = trainer_state_problem(path, state_fields)
            if problem is None:
                if latest is not None and warn and path.name > latest.name:
                    warn(f"using {path.name}, which is complete and newer than latest ({latest.name}): "
                         "the run stopped between sealing it and moving the pointer")
                return path
            if warn:
                warn(f"checkpoint {path.name} is not usable ({problem}); trying an older one")
        return None


# --------------------------------------------------------------------------------------------------
# What a training checkpoint holds: which files, which ranks gather and write, how they load back
# --------------------------------------------------------------------------------------------------
TRAINER_STATE = "trainer_state.json"
SCHEDULER = "scheduler.json"


@dataclass
class TrainerState:
    """What a checkpoint must hold besides tensors to continue exactly."""

    step: int = 0
    samples_seen: int = 0
    micro_batch_size: int = 0
    gradient_accumulation_steps: int = 0
    world_size: int = 1
    effective_batch_size: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    nonfinite_in_a_row: int = 0

    @classmethod
    def read(cls, checkpoint: Path) -> TrainerState:
        return cls(**json.loads((Path(checkpoint) / TRAINER_STATE).read_text()))


@dataclass
class TrainingObjects:
    """The live objects a checkpoint saves and restores (built once by the loop's builder)."""

    policy: torch.nn.Module
    strategy: object  # atlas.engine.strategies.Strategy
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    ema: object | None  # atlas.engine.ema.EMA
    ctx: object  # atlas.engine.distributed.DistContext


@dataclass(frozen=True)
class CheckpointSettings:
    interval: int
    on_save_error: str  # "stop" or "continue" (training.on_save_error)
    schedule: dict  # the LR schedule in force: written to scheduler.json, compared on resume
    asynchronous: bool = False  # training.async_checkpoint


def host_copy(obj):
    """A snapshot of a (nested) state on the host: every tensor copied to CPU, so training may change the
    originals while a background thread writes the copy."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: host_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(host_copy(v) for v in obj)
    return obj


class Checkpointer:
    """Saves and loads a training checkpoint through the atomic `CheckpointStore`.

    Every rank writes its RNG state into the temp folder and takes part in gathering the full weights,
    EMA and optimizer state (sharded under FSDP/ZeRO); rank 0 writes them and commits. A write error on
    any rank (disk full, unwritable folder) aborts the save on every rank: earlier checkpoints and
    `latest` stay as they were, and `training.on_save_error` stops or continues training."""

    def __init__(self, store: CheckpointStore, objects: TrainingObjects, settings: CheckpointSettings) -> None:
        self.store, self.objects, self.settings = store, objects, settings
        self.frozen = FrozenWeights(objects.policy)  # written once, linked into later checkpoints
        self._writer: threading.Thread | None = None  # the background write in flight (async_checkpoint)
        self._writer_result: dict = {}

    def due(self, step: int, last: bool, best: bool, stopped: bool) -> bool:
        return step % self.settings.interval == 0 or last or best or stopped

    def save(self, step: int, state: TrainerState, best: bool) -> Path | None:
        """Write checkpoint `step`: the committed folder, None when the save failed and training continues
        (training.on_save_error=continue), or, with async_checkpoint, None once the write is under way (the
        folder is committed in the background; `wait()` joins it)."""
        from atlas.engine import distributed as D

        self.wait()  # at most one save in flight
        o, store = self.objects, self.store
        ctx = o.ctx
        failure = store.guarded_write(step, lambda: store.begin(step)) if ctx.is_main else None
        D.barrier(ctx)
        tmp = store.tmp_dir(step)

        def write_rng() -> None:
            (tmp / "rng").mkdir(exist_ok=True)
            store.write_file(step, f"rng/rank_{ctx.rank}.pt", lambda: torch.save(rng_state(), tmp / "rng" / f"rank_{ctx.rank}.pt"))

        failure = failure or store.guarded_write(step, write_rng)
        any_failed = D.all_reduce_sum(torch.tensor([float(failure is not None)], device=ctx.device), ctx).item() > 0
        if any_failed:
            if ctx.is_main:
                store.abort(step)
            main_failure = D.broadcast_object(str(failure) if ctx.is_main and failure is not None else None, ctx)
            text = str(failure) if failure is not None else main_failure
            return self._failed(text or f"could not write checkpoint step {step}: a write failed on another rank "
                                "(see its log)")
        contents = self._gather(state)  # collectives: every rank; the full state on rank 0
        if ctx.is_main:
            self._split_frozen(contents)
        if self.settings.asynchronous:
            if ctx.is_main:
                contents = host_copy(contents)
                self._writer_result = {}
                self._writer = threading.Thread(target=self._write_in_background, args=(step, best, contents),
                                                name=f"atlas-checkpoint-{step}", daemon=True)
                self._writer.start()
            return None
        final, failure = self._write_and_commit(step, best, contents) if ctx.is_main else (None, None)
        text = D.broadcast_object(str(failure) if ctx.is_main and failure is not None else None, ctx)
        return final if text is None else self._failed(text)

    def poll(self) -> Path | None:
        """Between steps: a background write that has finished is reported now (its `checkpoint` line, or its
        failure as training.on_save_error says), not one checkpoint interval later at the next save."""
        if self._writer is not None and not self._writer.is_alive():
            return self.wait()
        return None

    def wait(self) -> Path | None:
        """Join the background write in flight (if any): its committed folder; a failure is handled as
        training.on_save_error says, here, on the rank that wrote it."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.join()
        self.store.wait_deletions()  # the folders its commit pruned are deleted too
        if writer is None:
            return None
        final, failure = self._writer_result.get("final"), self._writer_result.get("failure")
        if failure is not None:
            return self._failed(str(failure))
        if final is not None:
            logging.getLogger("atlas").info(f"checkpoint {final} (written in the background)")
        return final

    def _write_in_background(self, step: int, best: bool, contents: dict) -> None:
        try:
            self._write_and_commit(step, best, contents)
        except Exception as err:  # noqa: BLE001 - reported by wait() on the training thread, never lost
            self.store.abort(step)
            self._writer_result = {"final": None, "failure": SaveFailed(
                f"could not write checkpoint {step_dir_name(step)} in the background: {type(err).__name__}: {err}.")}

    def _split_frozen(self, contents: dict) -> None:
        """Rank 0, on the training thread: the frozen parameters leave the weights; they go to the frozen
        file when it must be written, and nowhere (not even the host copy) when the last one is linked."""
        plan = self.frozen.plan(contents["weights"])
        frozen = {name: contents["weights"].pop(name) for name in plan.names}
        contents["frozen"] = frozen if plan.reuse is None else None
        contents["frozen_plan"] = plan

    def _gather(self, state: TrainerState) -> dict:
        o = self.objects
        return {"weights": o.strategy.gather(o.strategy.local_state(o.policy)),
                "ema": o.strategy.gather(o.ema.state_dict()) if o.ema is not None else None,
                "optimizer": o.strategy.optimizer_state(o.policy, o.optimizer),
                "scaler": o.scaler.state_dict() if o.scaler is not None else None,
                "trainer_state": asdict(state)}

    def _write_and_commit(self, step: int, best: bool, contents: dict) -> tuple[Path | None, SaveFailed | None]:
        """Rank 0: the files, then the atomic commit (manifest, fsync, rename, pointers)."""
        o, store = self.objects, self.store
        tmp, final = store.tmp_dir(step), None

        def write_main() -> None:
            nonlocal final
            # each file named if its write fails; the big ones, biggest first, hashed and flushed beside the next
            write = functools.partial(store.write_file, step)
            plan, known = contents["frozen_plan"], {}
            rest = REST_IN_FROZEN if plan.names else None
            write("optimizer.pt", lambda: torch.save(contents["optimizer"], tmp / "optimizer.pt"), digest=True)
            write(WEIGHTS, lambda: o.policy.save_pretrained(tmp, state_dict=contents["weights"], rest=rest), digest=True)
            if contents["ema"] is not None:
                write(f"ema/{WEIGHTS}", lambda: o.policy.save_pretrained(tmp / "ema", state_dict=contents["ema"],
                                                                      rest=REST_IN_RAW), digest=True)
            if plan.names:  # a hard link to the last one comes with its digest; a new file is hashed beside the rest
                write(FROZEN_NAME, lambda: known.update(self.frozen.place(plan, tmp / FROZEN_NAME, contents["frozen"])),
                      digest=plan.reuse is None)
            if contents["scaler"] is not None:
                write("scaler.pt", lambda: torch.save(contents["scaler"], tmp / "scaler.pt"))
            (tmp / SCHEDULER).write_text(json.dumps({**self.settings.schedule, "step": step}))
            (tmp / TRAINER_STATE).write_text(json.dumps(contents["trainer_state"], indent=2))
            shutil.copyfile(store.root.parent / "config.yaml", tmp / "config.yaml")  # rendered once at start
            final = store.commit(step, best=best, known=known)
            self.frozen.sealed(plan, final)

        failure = store.guarded_write(step, write_main)
        if failure is not None:
            store.abort(step)
        self._writer_result = {"final": final, "failure": failure}
        return final, failure

    def _failed(self, text: str) -> None:
        if self.settings.on_save_error == "stop":
            raise SaveFailed(f"{text} Stopping (training.on_save_error=stop); free space, then --resume auto.")
        logging.getLogger("atlas").error(f"{text} Training continues (training.on_save_error=continue).")
        return None

    def load(self, path: Path) -> None:
        """EMA, optimizer, scaler and RNG state (the weights went into the whole policy before the strategy
        set it up: `full_weights`): full tensors on disk, cut to this rank's layout. Weights come from
        safetensors, the rest with weights_only=True: an unusable or hostile file is a CheckpointError naming
        it (resolve_resume has already checked the manifest's sizes and checksums)."""
        o = self.objects
        if o.ctx.is_main:
            self.frozen.resumed_from(path)  # its frozen file may be linked into this run's next checkpoint
        if o.ema is not None and (path / "ema" / WEIGHTS).is_file():
            averaged = o.ema.state_dict()
            full = {k: v for k, v in load_weights(path / "ema" / WEIGHTS, str(o.ctx.device)).items() if k in averaged}
            o.ema.load_state_dict(o.strategy.scatter(full, averaged))
        o.strategy.load_optimizer_state(o.policy, o.optimizer, load_torch(path / "optimizer.pt"))
        if o.scaler is not None and (path / "scaler.pt").is_file():
            o.scaler.load_state_dict(load_torch(path / "scaler.pt"))
        rng_file = path / "rng" / f"rank_{o.ctx.rank}.pt"
        if rng_file.is_file():
            set_rng_state(load_torch(rng_file))
        else:  # a different world size: fresh, but deterministic, per-rank streams
            torch.manual_seed(zlib.crc32(f"{path.name}:{o.ctx.rank}".encode()))


def full_weights(checkpoint: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A checkpoint's full model weights (what a strategy loads before it shards)."""
    return load_weights(Path(checkpoint) / WEIGHTS, device)


def read_schedule(checkpoint: Path) -> dict:
    """The LR schedule a checkpoint was trained under ({} when it did not record one)."""
    try:
        return json.loads((Path(checkpoint) / SCHEDULER).read_text())
    except (OSError, ValueError):
        return {}
