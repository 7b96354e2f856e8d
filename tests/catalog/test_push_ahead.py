"""The push's early hashing (``hash_ahead``) and its commit from the bytes it hashed
(``KnownBlobs``): the same manifest, the same bytes, the same errors, nothing visible when
a file changes under the push."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from registry.catalog import transfer
from registry.catalog.hash_index import NAME, HashIndex
from registry.catalog.transfer import (
    HEAD_BYTES,
    KnownBlobs,
    hash_ahead,
    hash_file,
    prepare_push,
)
from registry.client.local import LocalClient
from registry.errors import BlobNotFound, ChecksumMismatch, RangeNotSatisfiable
from registry.runtime import Runtime
from registry.storage.base import BlobStore

WEIGHTS = "adapter_model.safetensors"


def test_hash_ahead_gives_the_same_manifest_and_the_hashed_bytes(
    adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    folder = adapter_library["v1"]
    plain = prepare_push(folder, max_header_bytes=1 << 20)
    hash_ahead(folder, HashIndex(tmp_path / NAME, racy_s=0))
    early = prepare_push(folder, max_header_bytes=1 << 20)
    assert early.files == plain.files
    assert not transfer._AHEAD  # consumed once
    for f in early.files:
        data = (folder / f.path).read_bytes()
        kept = early.read[f.sha256]
        assert (kept.sha256, kept.size) == (hashlib.sha256(data).hexdigest(), len(data))
        assert kept.head == data[:HEAD_BYTES]
    # The thread's index was saved: a later push reads nothing.
    again = prepare_push(folder, max_header_bytes=1 << 20, index=HashIndex(tmp_path / NAME))
    assert again.files == plain.files and not again.read


def test_a_file_written_after_hash_ahead_is_hashed_again(
    adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "adapter"
    shutil.copytree(adapter_library["v1"], folder)
    hash_ahead(folder, None)
    transfer._AHEAD[folder.resolve()].join()
    shutil.copyfile(adapter_library["v2"] / WEIGHTS, folder / WEIGHTS)  # same size
    local = prepare_push(folder, max_header_bytes=1 << 20)
    by_path = {f.path: f.sha256 for f in local.files}
    assert by_path[WEIGHTS] == hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()


def test_hash_file_keeps_the_first_bytes(tmp_path: Path) -> None:
    for n in (0, 10, HEAD_BYTES, HEAD_BYTES + 1, 5 * transfer.CHUNK + 3):
        f = tmp_path / f"f{n}"
        data = os.urandom(n)
        f.write_bytes(data)
        done = hash_file(f)
        assert done == transfer.Hashed(hashlib.sha256(data).hexdigest(), n, data[:HEAD_BYTES])


def _outcome(store: BlobStore, sha: str, offset: int, length: int) -> object:
    try:
        return store.read_range(sha, offset, length)
    except (RangeNotSatisfiable, BlobNotFound) as exc:
        return type(exc)


@pytest.mark.parametrize("size", [0, 1, 1000, HEAD_BYTES + 5000])
def test_known_blobs_read_what_the_store_reads(
    blob_store: BlobStore, tmp_path: Path, size: int
) -> None:
    f = tmp_path / "blob"
    f.write_bytes(os.urandom(size))
    done = hash_file(f)
    blob_store.put_file(done.sha256, f)
    known = KnownBlobs(blob_store, {done.sha256: done})
    assert known.size(done.sha256) == blob_store.size(done.sha256) == size
    assert known.exists(done.sha256)
    points = {0, 1, 7, size - 1, size, size + 1, HEAD_BYTES - 3, HEAD_BYTES, HEAD_BYTES + 10}
    for offset in sorted(p for p in points if p >= 0):
        for length in (0, 1, 8, 4096, HEAD_BYTES, size + 10):
            assert _outcome(known, done.sha256, offset, length) == _outcome(
                blob_store, done.sha256, offset, length
            ), (offset, length)


def test_a_file_changed_during_the_push_stores_nothing(
    runtime: Runtime,
    adapter_library: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "adapter"
    shutil.copytree(adapter_library["v1"], folder)
    hash_ahead(folder, None)
    original = transfer.prepare_push
    hashed: list[str] = []

    def racing_prepare(*args: object, **kwargs: object) -> transfer.LocalAdapter:
        # Hashed (ahead), then rewritten with the same length before the upload reads it.
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        hashed.extend(f.sha256 for f in result.files if f.path == WEIGHTS)
        data = bytearray((folder / WEIGHTS).read_bytes())
        data[-1] ^= 0xFF
        (folder / WEIGHTS).write_bytes(bytes(data))
        return result

    monkeypatch.setattr(transfer, "prepare_push", racing_prepare)
    client = LocalClient(runtime)
    with pytest.raises(ChecksumMismatch):
        client.push(folder, "acme/racy")
    changed = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    assert hashed and not runtime.store.exists(hashed[0])
    assert not runtime.store.exists(changed)
    assert client.list_adapters() == []


def test_the_commit_from_hashed_bytes_records_what_storage_holds(
    runtime: Runtime, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    """The version recorded from the bytes the push hashed equals the one recorded when
    every read goes to storage (the adapter validated from the stored blobs)."""
    from registry.catalog.push import PushRequest, commit_version
    from registry.catalog.refs import parse_repo

    folder = adapter_library["v1"]
    client = LocalClient(runtime)
    pushed = client.push(folder, "acme/fast").version
    local = prepare_push(folder, max_header_bytes=1 << 20)
    req = PushRequest(repo=parse_repo("acme/slow"), files=local.files, author="tester")
    slow = commit_version(
        runtime.db, runtime.store, req, max_header_bytes=1 << 20, visible=None
    ).version
    keys = (
        "base_model",
        "peft_type",
        "r",
        "lora_alpha",
        "target_modules",
        "config",
        "size",
        "files",
    )
    assert {k: getattr(pushed, k) for k in keys} == {k: getattr(slow, k) for k in keys}
    assert pushed.content_id == slow.content_id


class _PresenceOnly:
    """A store that may only say whether a blob is there."""

    url = "none://"

    def __init__(self, real: object) -> None:
        self._real = real

    def exists(self, sha256: str) -> bool:
        return bool(self._real.exists(sha256))  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the store was used: {name}")


def test_an_unchanged_push_is_answered_by_the_catalog_and_a_presence_check(
    runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    from dataclasses import replace

    folder = adapter_library["v1"]
    client = LocalClient(runtime)
    first = client.push(folder, "acme/same")
    offline = LocalClient(replace(runtime, store=_PresenceOnly(runtime.store)))  # type: ignore[arg-type]
    again = offline.push(folder, "acme/same")
    assert not again.created and again.version == first.version
    assert (again.bytes_uploaded, again.blobs_uploaded) == (0, 0)
    assert again.blobs_reused == len(first.version.files)
    # The same answer as the full path gives (which does read storage).
    full = client.push(folder, "acme/same", strict=True)
    assert full.model_dump() == again.model_dump()
    # Another base is another version: the shortcut does not apply.
    with pytest.raises(AssertionError, match="the store was used"):
        offline.push(folder, "acme/same", base="other-base")
    with pytest.raises(AssertionError, match="the store was used"):
        offline.push(folder, "acme/elsewhere")
    # A blob gone from storage (fsck --repair deleted it, or it was lost) comes back: the
    # shortcut holds only while every blob is stored.
    weights = next(f for f in first.version.files if f.path.endswith(".safetensors"))
    runtime.store.delete(weights.sha256)
    with pytest.raises(AssertionError, match="the store was used"):
        offline.push(folder, "acme/same")
    restored = client.push(folder, "acme/same")
    assert not restored.created and restored.blobs_uploaded == 1
    assert runtime.store.exists(weights.sha256)
