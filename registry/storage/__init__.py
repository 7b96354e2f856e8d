"""Blob storage: the BlobStore protocol, its implementations, and ``open_store``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from registry.config import Settings
from registry.errors import InvalidInput
from registry.storage.base import BlobInfo, BlobStore, blob_key, check_sha256

__all__ = ["BlobInfo", "BlobStore", "blob_key", "check_sha256", "open_store", "open_store_at"]


def open_store(settings: Settings) -> BlobStore:
    """The store named by ``settings.effective_storage_url``; does no I/O.

    ``file:///abs/path`` opens a LocalBlobStore; ``s3://bucket[/prefix]`` an S3BlobStore
    at ``settings.s3_endpoint_url`` (AWS when unset). Anything else is InvalidInput.
    """
    return open_store_at(
        settings.effective_storage_url, settings=settings, endpoint_url=settings.s3_endpoint_url
    )


def open_store_at(
    url: str, *, settings: Settings, endpoint_url: str | None, profile: str | None = None
) -> BlobStore:
    """The store at ``url`` (``file:///...`` or ``s3://bucket/prefix``), S3 ones at
    ``endpoint_url`` with the AWS credentials of ``profile`` (None: the default chain);
    part size and concurrency from ``settings``. Does no I/O."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise InvalidInput(f"storage URL {url!r} must look like file:///absolute/path")
        from registry.storage.local import LocalBlobStore

        return LocalBlobStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise InvalidInput(f"storage URL {url!r} must look like s3://bucket/prefix")
        # Imported here so the embedded deployment never pays for importing boto3.
        from registry.storage.s3 import S3BlobStore

        return S3BlobStore(
            parts.netloc,
            parts.path.strip("/"),
            endpoint_url=endpoint_url,
            part_size=settings.part_size,
            max_concurrency=settings.s3_max_concurrency,
            profile=profile,
        )
    raise InvalidInput(
        f"unsupported storage URL {url!r}: expected file:///path or s3://bucket/prefix"
    )
