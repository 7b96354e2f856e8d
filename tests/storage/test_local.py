"""Local-only behaviour: atomic writes and an unusable folder."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from registry.errors import ChecksumMismatch, StorageUnavailable
from registry.storage.local import LocalBlobStore


def test_constructor_touches_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    assert store.url == (tmp_path / "blobs").as_uri()
    assert not (tmp_path / "blobs").exists()


def test_rejected_upload_leaves_no_temp_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(ChecksumMismatch):
        store.put_stream("0" * 64, io.BytesIO(b"not zeros"))
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "sha256").exists()


def test_blob_is_only_visible_once_complete(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = b"x" * 3_000_000
    digest = hashlib.sha256(data).hexdigest()

    class Watching(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            # Mid-write, the final key must not exist yet.
            assert not store.exists(digest)
            return super().read(size)

    assert store.put_stream(digest, Watching(data))
    assert store.exists(digest)
    assert oct(os.stat(tmp_path / "sha256" / digest[:2] / digest[2:]).st_mode & 0o777) == "0o644"


def test_unusable_root_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    store = LocalBlobStore(tmp_path / "file")
    with pytest.raises(StorageUnavailable, match="not usable"):
        store.check()
    with pytest.raises(StorageUnavailable):
        store.put_stream(hashlib.sha256(b"a").hexdigest(), io.BytesIO(b"a"))


def test_stray_files_are_not_listed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    (tmp_path / "sha256" / "ab").mkdir(parents=True)
    (tmp_path / "sha256" / "ab" / "short").write_text("x")
    (tmp_path / "sha256" / "README").write_text("x")
    assert list(store.list_blobs()) == []
