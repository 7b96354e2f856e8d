"""Base model registration from a real S3 HTTP endpoint (moto's server), headers only."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from registry.compat import inspect_base
from registry.errors import BaseSourceNotFound, InvalidBaseModel, Unavailable
from tests.compat.corpus import header_bytes
from tests.fixtures.s3 import free_port


def upload(client: Any, bucket: str, prefix: str, folder: Path, *, sha256: str = "none") -> None:
    """Upload a model folder; ``sha256``: "none", "metadata" (x-amz-meta-sha256) or
    "checksum" (S3's own ChecksumSHA256)."""
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        extra: dict[str, Any] = {}
        if sha256 == "metadata":
            extra["Metadata"] = {"sha256": hashlib.sha256(data).hexdigest()}
        elif sha256 == "checksum":
            extra["ChecksumAlgorithm"] = "SHA256"
        client.put_object(Bucket=bucket, Key=f"{prefix}/{path.name}", Body=data, **extra)


def test_s3_base_reads_only_the_headers(
    s3_server: str, s3_client: Any, s3_bucket: str, large_base: Path
) -> None:
    upload(s3_client, s3_bucket, "models/llama", large_base, sha256="metadata")
    local = inspect_base(str(large_base))

    info = inspect_base(f"s3://{s3_bucket}/models/llama", s3_endpoint_url=s3_server)

    assert info.bytes_read == header_bytes(large_base)
    assert info.bytes_read < info.total_size / 500
    assert info.tensors == local.tensors
    assert info.structure_hash == local.structure_hash
    # sha256s came from the objects' metadata, so the content hash matches the folder's.
    assert info.content_hash == local.content_hash
    assert info.source == f"s3://{s3_bucket}/models/llama"
    assert info.architecture["hidden_size"] == 256


def test_s3_checksum_sha256_gives_the_content_hash(
    s3_server: str, s3_client: Any, s3_bucket: str, large_base: Path
) -> None:
    upload(s3_client, s3_bucket, "m", large_base, sha256="checksum")

    info = inspect_base(f"s3://{s3_bucket}/m", s3_endpoint_url=s3_server)

    assert info.content_hash == inspect_base(str(large_base)).content_hash
    assert info.bytes_read == header_bytes(large_base)


def test_s3_without_checksums_has_no_content_hash_unless_asked(
    s3_server: str, s3_client: Any, s3_bucket: str, large_base: Path
) -> None:
    upload(s3_client, s3_bucket, "m", large_base)

    headers_only = inspect_base(f"s3://{s3_bucket}/m", s3_endpoint_url=s3_server)
    hashed = inspect_base(f"s3://{s3_bucket}/m", s3_endpoint_url=s3_server, compute_sha256=True)

    assert headers_only.content_hash is None
    assert all(f.sha256 is None for f in headers_only.files)
    assert headers_only.structure_hash == hashed.structure_hash
    assert hashed.content_hash == inspect_base(str(large_base)).content_hash
    assert hashed.bytes_read >= hashed.total_size


def test_s3_missing_bucket_or_prefix_is_not_found(s3_server: str, s3_bucket: str) -> None:
    with pytest.raises(BaseSourceNotFound, match="check the bucket and prefix"):
        inspect_base("s3://no-such-bucket-lorareg/m", s3_endpoint_url=s3_server)
    with pytest.raises(BaseSourceNotFound, match="no objects under this prefix"):
        inspect_base(f"s3://{s3_bucket}/empty", s3_endpoint_url=s3_server)


def test_s3_prefix_without_safetensors_is_refused(
    s3_server: str, s3_client: Any, s3_bucket: str
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="m/README.md", Body=b"# a model")

    with pytest.raises(InvalidBaseModel, match="holds no safetensors"):
        inspect_base(f"s3://{s3_bucket}/m", s3_endpoint_url=s3_server)


def test_s3_endpoint_that_does_not_answer_is_unavailable(s3_server: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unavailable, match="check LORAREG_S3_ENDPOINT_URL"):
        inspect_base("s3://bucket/model", s3_endpoint_url=closed)
