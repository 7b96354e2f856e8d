"""The BlobStore contract: every backend (``blob_store`` runs as local and as S3) passes it."""

from __future__ import annotations

import gc
import hashlib
import io
import random
import secrets
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, cast

import pytest

from registry.errors import BlobNotFound, ChecksumMismatch, InvalidInput, RangeNotSatisfiable
from registry.storage import BlobStore, check_sha256
from registry.storage.local import LocalBlobStore

MIB = 1024 * 1024


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_file(path: Path, size: int, seed: int = 0) -> str:
    """Write ``size`` pseudo-random bytes without holding them all; return their sha256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = rng.randbytes(min(left, MIB))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


class _Trickle(io.RawIOBase):
    """A non-seekable stream that returns short reads, like a socket, and may fail."""

    def __init__(self, data: bytes, *, max_read: int = 100_000, fail_after: int | None = None):
        self._data = memoryview(data)
        self._pos = 0
        self._max_read = max_read
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise OSError("connection reset by client")
        n = self._max_read if size < 0 else min(size, self._max_read)
        chunk = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(chunk)
        return chunk


def trickle(data: bytes, *, max_read: int = 100_000, fail_after: int | None = None) -> BinaryIO:
    """``data`` as a socket-like stream: short reads, optionally failing part-way."""
    return cast(BinaryIO, _Trickle(data, max_read=max_read, fail_after=fail_after))


def test_put_stream_round_trips(blob_store: BlobStore) -> None:
    data = payload(3000)
    assert blob_store.put_stream(sha(data), io.BytesIO(data), size=len(data)) is True
    assert blob_store.exists(sha(data))
    assert blob_store.size(sha(data)) == len(data)
    assert b"".join(blob_store.iter_bytes(sha(data), chunk_size=1000)) == data


def test_put_file_round_trips_and_reports_progress(blob_store: BlobStore, tmp_path: Path) -> None:
    digest = write_file(tmp_path / "w.safetensors", 70_000)
    seen: list[int] = []
    assert blob_store.put_file(digest, tmp_path / "w.safetensors", progress=seen.append)
    assert sum(seen) == 70_000
    assert b"".join(blob_store.iter_bytes(digest)) == (tmp_path / "w.safetensors").read_bytes()


def test_empty_blob_round_trips(blob_store: BlobStore) -> None:
    assert blob_store.put_stream(sha(b""), io.BytesIO(b""))
    assert blob_store.size(sha(b"")) == 0
    assert b"".join(blob_store.iter_bytes(sha(b""))) == b""
    with pytest.raises(RangeNotSatisfiable):
        blob_store.read_range(sha(b""), 0, 10)


def test_blobs_are_write_once(blob_store: BlobStore, tmp_path: Path) -> None:
    digest = write_file(tmp_path / "a.bin", 1000)
    assert blob_store.put_file(digest, tmp_path / "a.bin") is True
    assert blob_store.put_file(digest, tmp_path / "a.bin") is False
    # The existing blob short-circuits: the stream is not even read.
    assert blob_store.put_stream(digest, trickle(b"", fail_after=0)) is False
    assert blob_store.size(digest) == 1000


@pytest.mark.parametrize("size", [1000, 12 * MIB], ids=["single", "multipart"])
def test_wrong_sha256_stores_nothing(blob_store: BlobStore, tmp_path: Path, size: int) -> None:
    write_file(tmp_path / "a.bin", size)
    claimed = sha(b"something else")
    with pytest.raises(ChecksumMismatch):
        blob_store.put_file(claimed, tmp_path / "a.bin")
    with pytest.raises(ChecksumMismatch):
        blob_store.put_stream(claimed, trickle((tmp_path / "a.bin").read_bytes()))
    assert not blob_store.exists(claimed)
    assert list(blob_store.list_blobs()) == []


def test_declared_size_must_match(blob_store: BlobStore) -> None:
    data = payload(5000)
    with pytest.raises(ChecksumMismatch):
        blob_store.put_stream(sha(data), io.BytesIO(data), size=len(data) + 1)
    assert not blob_store.exists(sha(data))


def test_failing_source_stores_nothing(blob_store: BlobStore) -> None:
    data = payload(12 * MIB)
    # Fails past the first part, so S3 has a multipart upload in flight to abort.
    with pytest.raises(OSError, match="connection reset"):
        blob_store.put_stream(sha(data), trickle(data, max_read=MIB, fail_after=7 * MIB))
    assert not blob_store.exists(sha(data))
    assert list(blob_store.list_blobs()) == []


def test_read_range(blob_store: BlobStore) -> None:
    data = payload(10_000)
    blob_store.put_stream(sha(data), io.BytesIO(data))
    assert blob_store.read_range(sha(data), 100, 50) == data[100:150]
    assert blob_store.read_range(sha(data), 0, 1) == data[:1]
    # A range running past the end is cut short, as HTTP ranges are.
    assert blob_store.read_range(sha(data), 9_990, 100) == data[9_990:]
    assert blob_store.read_range(sha(data), 9_999, 0) == b""
    with pytest.raises(RangeNotSatisfiable):
        blob_store.read_range(sha(data), 10_000, 10)
    with pytest.raises(RangeNotSatisfiable):
        blob_store.read_range(sha(data), 20_000, 0)
    with pytest.raises(InvalidInput):
        blob_store.read_range(sha(data), -1, 10)


def test_missing_blob(blob_store: BlobStore) -> None:
    missing = sha(b"never stored")
    assert blob_store.exists(missing) is False
    with pytest.raises(BlobNotFound):
        blob_store.size(missing)
    # Raised by the call itself, before any iteration.
    with pytest.raises(BlobNotFound):
        blob_store.iter_bytes(missing)
    with pytest.raises(BlobNotFound):
        blob_store.read_range(missing, 0, 10)


def test_malformed_sha256_is_refused(blob_store: BlobStore) -> None:
    for bad in ["../../etc/passwd", "ABC", "0" * 63, "G" * 64]:
        with pytest.raises(InvalidInput):
            blob_store.exists(bad)
    with pytest.raises(InvalidInput):
        check_sha256("a" * 65)


def test_delete_is_idempotent(blob_store: BlobStore) -> None:
    data = payload(100)
    blob_store.put_stream(sha(data), io.BytesIO(data))
    blob_store.delete(sha(data))
    assert not blob_store.exists(sha(data))
    blob_store.delete(sha(data))
    # Deleted blobs can be stored again.
    assert blob_store.put_stream(sha(data), io.BytesIO(data))


def test_list_blobs(blob_store: BlobStore) -> None:
    assert list(blob_store.list_blobs()) == []
    blobs = {sha(d): len(d) for d in (payload(10, 1), payload(2000, 2), payload(0, 3))}
    for i, digest in enumerate(blobs):
        blob_store.put_stream(digest, io.BytesIO(payload(blobs[digest], i + 1)))
    listed = list(blob_store.list_blobs())
    assert {(b.sha256, b.size) for b in listed} == set(blobs.items())
    assert all(isinstance(b.modified, datetime) and b.modified.tzinfo for b in listed)


def test_multipart_upload_round_trips(blob_store: BlobStore, tmp_path: Path) -> None:
    # 12 MiB over 5 MiB parts: two full parts and a short last one on S3.
    digest = write_file(tmp_path / "big.safetensors", 12 * MIB + 123)
    assert blob_store.put_file(digest, tmp_path / "big.safetensors")
    assert blob_store.size(digest) == 12 * MIB + 123
    streamed = hashlib.sha256()
    for chunk in blob_store.iter_bytes(digest):
        streamed.update(chunk)
    assert streamed.hexdigest() == digest
    assert blob_store.read_range(digest, 5 * MIB - 5, 10) == blob_store.read_range(
        digest, 5 * MIB - 5, 5
    ) + blob_store.read_range(digest, 5 * MIB, 5)


def test_put_stream_of_unknown_length_with_short_reads(blob_store: BlobStore) -> None:
    data = payload(11 * MIB)
    assert blob_store.put_stream(sha(data), trickle(data))
    assert blob_store.read_range(sha(data), 11 * MIB - 4, 100) == data[-4:]


def test_large_put_does_not_hold_the_file_in_memory(blob_store: BlobStore, tmp_path: Path) -> None:
    size = 48 * MIB
    digest = write_file(tmp_path / "huge.bin", size)
    # Warm up first: building a boto3 client parses megabytes of service model.
    blob_store.check()
    gc.collect()
    tracemalloc.start()
    try:
        assert blob_store.put_file(digest, tmp_path / "huge.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # S3 holds at most (concurrency + 1) parts of 5 MiB; local holds one 1 MiB chunk.
    assert peak < size / 2, f"peak {peak / MIB:.1f} MiB for a {size / MIB:.0f} MiB file"
    assert blob_store.size(digest) == size


def test_abandoned_iterators_release_their_source(blob_store: BlobStore) -> None:
    data = payload(3 * MIB)
    blob_store.put_stream(sha(data), io.BytesIO(data))
    started = blob_store.iter_bytes(sha(data), chunk_size=1000)
    assert next(started) == data[:1000]
    unstarted = blob_store.iter_bytes(sha(data))
    del started, unstarted
    # An unclosed file or socket would surface here as a ResourceWarning (an error).
    gc.collect()
    assert blob_store.read_range(sha(data), 0, 4) == data[:4]


def test_presign_get_serves_the_blob(blob_store: BlobStore) -> None:
    import httpx

    data = payload(5000)
    blob_store.put_stream(sha(data), io.BytesIO(data))
    url = blob_store.presign_get(sha(data), expires_s=60, filename="adapter_model.safetensors")
    if isinstance(blob_store, LocalBlobStore):
        assert url is None  # local blobs are served through the registry
        return
    assert url is not None
    with httpx.Client(timeout=30) as http:
        full = http.get(url)
        assert full.status_code == 200 and full.content == data
        assert "adapter_model.safetensors" in full.headers["content-disposition"]
        part = http.get(url, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == data[10:20]


def test_staged_upload_reaches_the_blob_only_verified(blob_store: BlobStore) -> None:
    """A presigned PUT lands at its staging key; only bytes hashing to the name are stored,
    and a stale URL rewrites nothing once the blob is stored."""
    import httpx

    data = payload(4000)
    upload_id = secrets.token_hex(16)
    url = blob_store.presign_staged_put(upload_id, len(data), expires_s=60)
    if isinstance(blob_store, LocalBlobStore):
        assert url is None  # uploads go through the registry
        with pytest.raises(BlobNotFound):
            blob_store.store_staged(upload_id, sha(data), len(data))
        return
    assert url is not None
    assert httpx.put(url, content=payload(4000, seed=9)).status_code == 200
    assert not blob_store.exists(sha(data))  # staged bytes are not a blob
    with pytest.raises(ChecksumMismatch):
        blob_store.store_staged(upload_id, sha(data), len(data))
    assert not blob_store.exists(sha(data))
    with pytest.raises(BlobNotFound):  # the bad upload was discarded
        blob_store.store_staged(upload_id, sha(data), len(data))
    assert httpx.put(url, content=data).status_code == 200
    blob_store.store_staged(upload_id, sha(data), len(data))
    assert b"".join(blob_store.iter_bytes(sha(data))) == data
    # The same URL, later, with other bytes of the same size: the blob does not change.
    assert httpx.put(url, content=payload(4000, seed=9)).status_code == 200
    assert b"".join(blob_store.iter_bytes(sha(data))) == data
    assert [x.kind for x in blob_store.list_leftovers()] == ["staged upload"]
    with pytest.raises(InvalidInput):
        blob_store.presign_staged_put("../sha256/ab/cd", 1, expires_s=60)


def test_leftovers_are_listed_and_removed(blob_store: BlobStore, tmp_path: Path) -> None:
    """What a killed writer leaves (a temp file; an unfinished multipart upload on S3)."""
    data = payload(1000)
    if isinstance(blob_store, LocalBlobStore):
        tmp = blob_store.root / "tmp"
        tmp.mkdir(parents=True)
        (tmp / f"{sha(data)[:16]}.999999999.x1.part").write_bytes(data)
        kind = "temp file"
    else:
        from registry.storage.s3 import S3BlobStore

        s3 = cast(S3BlobStore, blob_store)
        key = s3._key(sha(data))
        upload_id = s3.client.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"]
        s3.client.upload_part(
            Bucket=s3.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=data
        )
        kind = "multipart upload"
    [item] = list(blob_store.list_leftovers())
    assert (item.kind, item.size) == (kind, len(data))
    assert item.pid in (None, 999999999)
    blob_store.remove_leftover(item)
    assert list(blob_store.list_leftovers()) == []
    assert list(blob_store.list_blobs()) == []


def test_check_passes(blob_store: BlobStore) -> None:
    blob_store.check()
