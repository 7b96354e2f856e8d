"""A base model under an ``s3://bucket/prefix`` (AWS S3, MinIO, R2, Ceph RGW).

Headers are read with ranged GETs (8 bytes, then the JSON header), so the bytes fetched
are a tiny fraction of the model. botocore errors are translated here: a missing bucket
or an empty prefix is BaseSourceNotFound, denied access Forbidden, an unreachable
endpoint Unavailable.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from registry.errors import BaseSourceNotFound, Forbidden, InvalidInput, Unavailable

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 8 * 1024 * 1024


def _make_client(endpoint_url: str | None) -> Any:
    config = Config(
        connect_timeout=3.0,
        read_timeout=60.0,
        retries={"mode": "standard", "max_attempts": 3},
        signature_version="s3v4",
        # MinIO, Ceph and most self-hosted endpoints need path-style addressing.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


class S3Source:
    """The top-level objects under ``s3://bucket/prefix/``; the client is built on first use."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None = None,
        client: Any | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint_url = endpoint_url
        self.bytes_read = 0
        self._client = client
        self._heads: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_url(
        cls, url: str, *, endpoint_url: str | None = None, client: Any | None = None
    ) -> S3Source:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise InvalidInput(f"{url!r} is not an S3 source; write s3://bucket/prefix")
        return cls(bucket, prefix, endpoint_url=endpoint_url, client=client)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _make_client(self.endpoint_url)
        return self._client

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def files(self) -> dict[str, int]:
        base = f"{self.prefix}/" if self.prefix else ""
        out: dict[str, int] = {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(base) :]
                    if name and not name.startswith("."):
                        out[name] = int(obj["Size"])
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "list")
        if not out:
            raise BaseSourceNotFound(
                f"{self.url}: no objects under this prefix; check the bucket and prefix"
                " (the prefix is the folder holding config.json and the .safetensors files)"
            )
        return out

    def read(self, path: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            resp = self.client.get_object(
                Bucket=self.bucket,
                Key=self._key(path),
                Range=f"bytes={offset}-{offset + length - 1}",
            )
            # StreamingBody's context manager yields the raw stream; keep the wrapper,
            # which checks the length it was promised.
            body = resp["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, f"read {path}")
        self.bytes_read += len(data)
        return data

    def read_small(self, path: str, size: int) -> bytes:
        return self.read(path, 0, size)

    def known_sha256(self, path: str) -> str | None:
        """Object metadata ``sha256`` (hex), else a full-object ``ChecksumSHA256``."""
        head = self._head(path)
        meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
        hex_digest = str(meta.get("sha256", "")).lower()
        if _SHA256_HEX.match(hex_digest):
            return hex_digest
        checksum = head.get("ChecksumSHA256")
        # A multipart object's checksum is a checksum of part checksums ("...-N").
        if (
            checksum
            and "-" not in checksum
            and head.get("ChecksumType", "FULL_OBJECT") == ("FULL_OBJECT")
        ):
            try:
                raw = base64.b64decode(checksum, validate=True)
            except ValueError:
                return None
            return raw.hex() if len(raw) == 32 else None
        return None

    def stream(self, path: str) -> Iterator[bytes]:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(path))
            body = resp["Body"]
            try:
                for chunk in body.iter_chunks(CHUNK):
                    self.bytes_read += len(chunk)
                    yield chunk
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, f"read {path}")

    def _head(self, path: str) -> dict[str, Any]:
        if path not in self._heads:
            try:
                self._heads[path] = self.client.head_object(
                    Bucket=self.bucket, Key=self._key(path), ChecksumMode="ENABLED"
                )
            except (ClientError, BotoCoreError) as exc:
                self._raise(exc, f"inspect {path}")
        return self._heads[path]

    def _raise(self, exc: Exception, doing: str) -> NoReturn:
        where = f"{self.url} ({self.endpoint_url or 'AWS'})"
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchBucket", "NoSuchKey", "404", "NotFound"):
                raise BaseSourceNotFound(
                    f"{where}: could not {doing}: {code}; check the bucket and prefix"
                ) from None
            if code in ("AccessDenied", "403", "Forbidden") or status == 403:
                raise Forbidden(
                    f"{where}: access denied while trying to {doing}; give the server's"
                    " credentials s3:ListBucket and s3:GetObject on this prefix"
                ) from None
            raise Unavailable(f"{where}: could not {doing}: {exc}") from None
        raise Unavailable(
            f"{where}: could not {doing}: {exc}; check LORAREG_S3_ENDPOINT_URL and the network"
        ) from None
