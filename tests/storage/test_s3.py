"""S3-only behaviour: failures a user of a real bucket would hit, on a real HTTP endpoint."""

from __future__ import annotations

import hashlib
import io
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from registry.errors import ChecksumMismatch, InvalidInput, StorageUnavailable
from registry.storage.s3 import S3BlobStore, content_disposition
from tests.fixtures.s3 import TEST_PART_SIZE, free_port

MIB = 1024 * 1024


@pytest.fixture
def s3_store(s3_server: str, s3_bucket: str) -> Iterator[S3BlobStore]:
    store = S3BlobStore(s3_bucket, "blobs", endpoint_url=s3_server, part_size=TEST_PART_SIZE)
    yield store
    store.close()


def test_dead_endpoint_fails_fast_with_a_clear_error() -> None:
    store = S3BlobStore("some-bucket", endpoint_url=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="127.0.0.1"):
        store.check()
    with pytest.raises(StorageUnavailable):
        store.exists("0" * 64)
    assert time.monotonic() - started < 15
    store.close()


def test_missing_bucket_is_unavailable(s3_server: str) -> None:
    store = S3BlobStore("no-such-bucket-here", endpoint_url=s3_server)
    with pytest.raises(StorageUnavailable, match="does not exist"):
        store.check()
    store.close()


def test_rejected_multipart_upload_leaves_no_parts_behind(
    s3_store: S3BlobStore, s3_client: Any, s3_bucket: str
) -> None:
    data = random.Random(7).randbytes(11 * MIB)
    with pytest.raises(ChecksumMismatch):
        s3_store.put_stream(hashlib.sha256(b"other").hexdigest(), io.BytesIO(data))
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


def test_keys_and_metadata(s3_store: S3BlobStore, s3_client: Any, s3_bucket: str) -> None:
    data = b"weights"
    digest = hashlib.sha256(data).hexdigest()
    s3_store.put_stream(digest, io.BytesIO(data))
    key = f"blobs/sha256/{digest[:2]}/{digest[2:]}"
    head = s3_client.head_object(Bucket=s3_bucket, Key=key)
    assert head["Metadata"] == {"sha256": digest}
    assert S3BlobStore(s3_bucket, "", endpoint_url="x")._key(digest) == key.removeprefix("blobs/")


def test_stray_keys_are_not_listed(s3_store: S3BlobStore, s3_client: Any, s3_bucket: str) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="blobs/sha256/ab/not-a-sha", Body=b"x")
    s3_client.put_object(Bucket=s3_bucket, Key="elsewhere/file", Body=b"x")
    assert list(s3_store.list_blobs()) == []


def test_presigned_put_is_bound_to_its_length(s3_store: S3BlobStore) -> None:
    data = b"0123456789"
    url = s3_store.presign_staged_put("0" * 32, len(data), expires_s=60)
    assert url is not None
    # The length is part of the signature, so AWS refuses any other body size.
    assert "content-length" in httpx.URL(url).params["X-Amz-SignedHeaders"]
    assert "/blobs/staging/" + "0" * 32 in url  # never a blob's key


def test_presign_expiry_is_bounded(s3_store: S3BlobStore) -> None:
    with pytest.raises(InvalidInput):
        s3_store.presign_get("0" * 64, expires_s=8 * 24 * 3600)


def test_content_disposition_is_header_safe() -> None:
    value = content_disposition('dir/we"ird\nnäme.safetensors')
    assert value.startswith('attachment; filename="we_ird_n_me.safetensors"')
    assert "filename*=UTF-8''we%22ird%0An%C3%A4me.safetensors" in value
    assert "\n" not in value


def test_part_size_below_the_s3_minimum_is_refused() -> None:
    with pytest.raises(InvalidInput):
        S3BlobStore("bucket", part_size=MIB)
