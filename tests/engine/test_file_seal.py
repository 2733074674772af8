"""The checksums and flushes a save starts beside its later writes (atlas/engine/file_seal.py) are the ones the
manifest would have computed, and a file that cannot be read fails the commit, not a later load."""

from __future__ import annotations

import hashlib
import json

import pytest

from atlas.engine.checkpoint import CheckpointStore, SaveFailed, verify
from atlas.engine.file_seal import EarlySeal


def test_early_digests_are_the_files_sha256_and_a_missing_file_is_raised_on_the_committing_thread(tmp_path):
    seal = EarlySeal()
    seal.start(tmp_path)
    (tmp_path / "sub").mkdir()
    for name, data in (("a.bin", b"x" * 3_000_000), ("sub/b.bin", b"weights")):
        (tmp_path / name).write_bytes(data)
        seal.written(name)
    digests, flushed = seal.results()
    assert digests == {name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in ("a.bin", "sub/b.bin")}
    assert flushed == {tmp_path / "a.bin", tmp_path / "sub" / "b.bin"}
    seal.start(tmp_path)
    seal.written("never-written.bin")
    with pytest.raises(FileNotFoundError):
        seal.results()
    seal.start(tmp_path)
    seal.written("never-written.bin")
    seal.drain()  # an aborted save: the error is waited for and dropped, nothing is left pending
    assert seal.results() == ({}, set())


def test_a_store_commit_uses_the_early_digests_and_fails_cleanly_when_one_cannot_be_read(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    tmp = store.begin(1)
    store.write_file(1, "big.bin", lambda: (tmp / "big.bin").write_bytes(b"\1" * 2_000_000), digest=True)
    store.write_file(1, "small.json", lambda: (tmp / "small.json").write_text("{}"))
    final = store.commit(1)
    manifest = json.loads((final / "manifest.json").read_text())["files"]
    assert manifest["big.bin"]["sha256"] == hashlib.sha256(b"\1" * 2_000_000).hexdigest()
    assert verify(final) is None and store.pointer("latest") == final
    # the second save hands in a file its writer never produced: the commit fails, `latest` stays on step 1
    tmp = store.begin(2)
    failure = store.guarded_write(2, lambda: (store.write_file(2, "gone.bin", lambda: None, digest=True),
                                              store.commit(2)))
    assert isinstance(failure, SaveFailed) and "could not write checkpoint step_00000002" in str(failure)
    assert "FileNotFoundError" in str(failure)
    assert store.pointer("latest") == final and not tmp.exists()


def test_files_not_handed_in_are_hashed_at_the_commit_and_a_vouched_digest_is_not_read_again(tmp_path):
    """The small files a save writes without handing them in (RNG, schedule, configs) get their digests in the
    commit's parallel pass; a linked file whose digest the caller vouches for is flushed, not read."""
    seal = EarlySeal()
    seal.start(tmp_path)
    (tmp_path / "rng").mkdir()
    files = {"big.bin": b"w" * 2_000_000, "rng/rank_0.pt": b"rng", "trainer_state.json": b"{}", "linked.bin": b"frozen"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    seal.written("big.bin")
    digests, flushed = seal.results(known={"linked.bin"})
    assert digests == {name: hashlib.sha256(data).hexdigest() for name, data in files.items() if name != "linked.bin"}
    assert flushed == {tmp_path / name for name in files}
    store = CheckpointStore(tmp_path / "checkpoints")
    tmp = store.begin(1)
    for name, data in (("a.json", b"{}"), ("rng/rank_0.pt", b"r")):
        (tmp / name).parent.mkdir(exist_ok=True)
        store.write_file(1, name, lambda name=name, data=data: (tmp / name).write_bytes(data))
    (tmp / "linked.bin").write_bytes(b"frozen")
    final = store.commit(1, known={"linked.bin": "0" * 64})  # a digest taken on trust: the manifest keeps it
    manifest = json.loads((final / "manifest.json").read_text())["files"]
    assert manifest["linked.bin"]["sha256"] == "0" * 64
    assert manifest["rng/rank_0.pt"]["sha256"] == hashlib.sha256(b"r").hexdigest()
    assert set(manifest) == {"a.json", "rng/rank_0.pt", "linked.bin"}
