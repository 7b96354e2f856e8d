"""open_store picks the backend from the storage URL in settings."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from registry.config import load_settings
from registry.errors import InvalidInput
from registry.storage import BlobStore, open_store
from registry.storage.local import LocalBlobStore
from registry.storage.s3 import S3BlobStore


def test_default_is_a_local_folder_under_home(tmp_path: Path) -> None:
    store = open_store(load_settings(home=tmp_path))
    assert isinstance(store, LocalBlobStore)
    assert store.root == (tmp_path / "blobs").resolve()


def test_s3_url_names_bucket_and_prefix() -> None:
    settings = load_settings(
        storage_url="s3://models/lorareg/prod/", s3_endpoint_url="http://minio:9000"
    )
    store = open_store(settings)
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix, store.endpoint_url) == (
        "models",
        "lorareg/prod",
        "http://minio:9000",
    )
    assert store.part_size == settings.part_size
    assert store.url == "s3://models/lorareg/prod"


@pytest.mark.parametrize(
    "url", ["gs://bucket/x", "s3:///no-bucket", "file://host/path", "/plain/path", "bucket"]
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="storage URL"):
        open_store(load_settings(storage_url=url))


def test_opened_store_works(storage_overrides: dict[str, Any]) -> None:
    store = open_store(load_settings(**storage_overrides))
    assert isinstance(store, BlobStore)
    store.check()
    digest = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"  # sha256("a")
    assert store.put_stream(digest, io.BytesIO(b"a"))
    assert store.read_range(digest, 0, 1) == b"a"
    if isinstance(store, S3BlobStore):
        store.close()
