"""Frozen weights written once per run: later checkpoints hard-link the file instead of writing it again.

A fine-tune that freezes a backbone (a MiniLM, a VGGT, a LoRA base) would otherwise write the same
tens or hundreds of megabytes into every checkpoint, and hash them for the manifest, at every save. Here
a checkpoint's `model.safetensors` holds what the run trains plus the buffers, and says in its header that
the frozen parameters are in `frozen.safetensors` beside it (atlas/engine/weight_files.py). The first save
of a process writes that file; each later save hard-links the newest checkpoint's copy into its own
folder (a copy where the filesystem has no hard links) and reuses its SHA-256 for the manifest. Every
checkpoint folder stays whole on its own: deleting one (retention) drops one link, never the data another
checkpoint needs, and a folder copied elsewhere carries the file.

"Unchanged" is decided from the live parameters, not assumed: the set of frozen names (requires_grad
False), their shapes and dtypes, and each tensor's storage and version counter (which every in-place
write through torch bumps). Any difference, a checkpoint folder that was removed or replaced, or a resume
that froze other modules: the file is written again. Only a write through `.data` (which bypasses the
version counter) could go unseen; Atlas itself never writes frozen weights after loading them.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from atlas.engine.weight_files import FROZEN_NAME, write_weights

Fingerprint = tuple[tuple[str, tuple[int, ...], str, int, int], ...]


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t  # a DTensor's shard on this rank (FSDP)


def frozen_fingerprint(policy: nn.Module) -> Fingerprint:
    """Names, shapes, dtypes, storage and version counter of the policy's frozen parameters."""
    rows = []
    for name, param in policy.named_parameters():
        if param.requires_grad:
            continue
        local = _local(param)
        try:
            storage = local.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):  # no storage (meta, ZeRO-3 released): never reused
            storage = -1
        rows.append((name, tuple(param.shape), str(param.dtype), int(local._version), storage))
    return tuple(rows)


@dataclass(frozen=True)
class FrozenPlan:
    """What one save does with the frozen weights, decided on the training thread when the save starts."""

    names: tuple[str, ...]  # state-dict names of the frozen parameters (empty: nothing frozen, no file)
    fingerprint: Fingerprint
    reuse: Path | None  # the sealed frozen.safetensors to link, or None: write the tensors


@dataclass(frozen=True)
class _Sealed:
    path: Path  # frozen.safetensors of the newest committed checkpoint that holds it
    fingerprint: Fingerprint
    identity: tuple[int, int, int]  # st_dev, st_ino, st_size when it was sealed
    sha256: str


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size


def _manifest_sha(folder: Path) -> str | None:
    try:
        return json.loads((folder / "manifest.json").read_text())["files"][FROZEN_NAME]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


class FrozenWeights:
    """The run's frozen-weights file: planned per save, placed into the temp folder, sealed after the commit."""

    def __init__(self, policy: nn.Module) -> None:
        self.policy = policy
        self._sealed: _Sealed | None = None
        self.linked = 0  # saves that reused the file instead of writing it (the run summary reports it)

    def plan(self, weights: dict[str, torch.Tensor]) -> FrozenPlan:
        fingerprint = frozen_fingerprint(self.policy)
        names = tuple(row[0] for row in fingerprint if row[0] in weights)
        sealed = self._sealed
        reuse = None
        if names and sealed is not None and sealed.fingerprint == fingerprint and _identity(sealed.path) == sealed.identity:
            reuse = sealed.path
        return FrozenPlan(names, fingerprint, reuse)

    def place(self, plan: FrozenPlan, dest: Path, tensors: dict[str, torch.Tensor] | None) -> dict[str, str]:
        """Put the frozen file at `dest`; returns {file name: sha256} for the manifest when the digest is known
        (a hard link to the sealed file: the same bytes), else {} (written or copied: the manifest hashes it)."""
        if plan.reuse is None:
            write_weights(tensors or {}, dest)
            return {}
        try:
            os.link(plan.reuse, dest)
        except OSError:  # no hard links here (another filesystem, FAT, a quota on links): a byte copy
            shutil.copyfile(plan.reuse, dest)
            return {}
        self.linked += 1
        sealed = self._sealed
        return {FROZEN_NAME: sealed.sha256} if sealed is not None and _identity(dest) == sealed.identity else {}

    def sealed(self, plan: FrozenPlan, folder: Path) -> None:
        """After `folder` was committed: its frozen file is the one the next save links."""
        path = folder / FROZEN_NAME
        identity, sha = _identity(path), _manifest_sha(folder)
        if plan.names and identity is not None and sha is not None:
            self._sealed = _Sealed(path, plan.fingerprint, identity, sha)

    def resumed_from(self, folder: Path) -> None:
        """A resume loaded the frozen weights from `folder`: its file may be linked, if it holds exactly the
        parameters this run freezes (a resume may freeze other modules than the run it continues)."""
        from atlas.engine.weight_files import WeightFileError, weight_shapes

        path = folder / FROZEN_NAME
        if not path.is_file():
            return
        fingerprint = frozen_fingerprint(self.policy)
        try:
            held = weight_shapes(path)
        except WeightFileError:
            return
        if held == {row[0]: row[1] for row in fingerprint}:
            self.sealed(FrozenPlan(tuple(held), fingerprint, None), folder)
