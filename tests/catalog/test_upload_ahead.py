"""Blobs sent while the catalog opens (``upload_ahead``): the same version, counts and stored
bytes as the plain push; nothing sent for an adapter the push refuses; a file changed after
hashing is never stored under its stale hash."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from registry.catalog import transfer, upload_ahead
from registry.catalog.transfer import hash_ahead
from registry.catalog.upload_ahead import take_upload_ahead, wait_ready
from registry.client.local import LocalClient
from registry.errors import UnsafeFormat
from registry.runtime import Runtime

WEIGHTS = "adapter_model.safetensors"


def _start(folder: Path, runtime: Runtime) -> None:
    hash_ahead(folder, None)
    upload_ahead.upload_ahead(folder, runtime.settings, progress=None)
    wait_ready(folder)


def _stored(runtime: Runtime, folder: Path) -> dict[str, bool]:
    shas = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    return {name: runtime.store.exists(sha) for name, sha in shas.items()}


def test_the_same_version_and_counts_as_the_plain_push(
    runtime: Runtime, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    client = LocalClient(runtime)
    folder = tmp_path / "a"
    shutil.copytree(adapter_library["v1"], folder)
    _start(folder, runtime)
    early = client.push(folder, "acme/early")
    assert not upload_ahead._UPLOADS and not transfer._AHEAD  # both consumed
    plain = client.push(adapter_library["v1"], "acme/plain")
    assert early.created and plain.created
    assert early.version.files == plain.version.files
    assert early.version.content_id == plain.version.content_id
    assert (early.bytes_uploaded, early.blobs_uploaded, early.blobs_reused) == (
        sum(f.size for f in early.version.files),
        len(early.version.files),
        0,
    )
    # The stored bytes are the folder's.
    for f in early.version.files:
        data = b"".join(runtime.store.iter_bytes(f.sha256))
        assert data == (folder / f.path).read_bytes()
    # Unchanged again, started early: nothing new to send; the catalog's answer.
    _start(folder, runtime)
    again = client.push(folder, "acme/early")
    assert not again.created and again.version == early.version and again.blobs_uploaded == 0


def test_a_lost_blob_is_counted_as_the_plain_push_counts_it(
    runtime: Runtime, adapter_dir: Path
) -> None:
    client = LocalClient(runtime)
    first = client.push(adapter_dir, "acme/lost")
    weights = next(f for f in first.version.files if f.path == WEIGHTS)
    runtime.store.delete(weights.sha256)
    _start(adapter_dir, runtime)
    again = client.push(adapter_dir, "acme/lost")
    assert not again.created and again.version == first.version
    assert (again.blobs_uploaded, again.bytes_uploaded) == (1, weights.size)
    assert runtime.store.exists(weights.sha256)


def test_nothing_is_sent_for_an_adapter_the_push_refuses(
    runtime: Runtime, adapter_dir: Path
) -> None:
    (adapter_dir / "extra.bin").write_bytes(b"pickled" * 100)
    _start(adapter_dir, runtime)
    take = upload_ahead._UPLOADS[adapter_dir.resolve()]
    assert take.join() == {}
    with pytest.raises(UnsafeFormat):
        LocalClient(runtime).push(adapter_dir, "acme/refused")
    assert not any(_stored(runtime, adapter_dir).values())


def test_a_file_changed_after_hashing_is_not_stored_under_its_old_hash(
    runtime: Runtime, adapter_dir: Path, adapter_library: dict[str, Path]
) -> None:
    old = hashlib.sha256((adapter_dir / WEIGHTS).read_bytes()).hexdigest()
    hash_ahead(adapter_dir, None)
    transfer._AHEAD[adapter_dir.resolve()].join()
    shutil.copyfile(adapter_library["v2"] / WEIGHTS, adapter_dir / WEIGHTS)  # same size
    upload_ahead.upload_ahead(adapter_dir, runtime.settings, progress=None)
    sent = take_upload_ahead(adapter_dir)
    assert sent is not None and old not in sent.join()
    assert not runtime.store.exists(old)
    # The push hashes it again and stores what the folder holds now.
    upload_ahead.upload_ahead(adapter_dir, runtime.settings, progress=None)
    pushed = LocalClient(runtime).push(adapter_dir, "acme/changed")
    weights = next(f for f in pushed.version.files if f.path == WEIGHTS)
    assert weights.sha256 == hashlib.sha256((adapter_dir / WEIGHTS).read_bytes()).hexdigest()
    assert runtime.store.exists(weights.sha256) and not runtime.store.exists(old)
