"""A BlobStore on an S3-compatible bucket (AWS S3, MinIO, R2, Ceph RGW).

Uploads make one verified pass over the bytes (see ``s3_upload``): nothing becomes
visible at a key unless it hashed to that key's sha256. Presigned uploads go to
``staging/<upload id>`` and reach a blob key only through ``store_staged``.

botocore errors are translated here and nowhere else: missing keys become BlobNotFound,
HTTP 416 RangeNotSatisfiable, and everything that means "the store is not usable"
(connection refused, timeouts, missing bucket, denied access) StorageUnavailable.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from registry.errors import (
    BlobNotFound,
    ChecksumMismatch,
    InvalidInput,
    LoraregError,
    RangeNotSatisfiable,
    StorageUnavailable,
)
from registry.storage.base import (
    CHUNK,
    SHA256_RE,
    BlobInfo,
    ChunkIterator,
    Leftover,
    Progress,
    blob_key,
    check_range,
    check_sha256,
    check_upload_id,
)
from registry.storage.s3_upload import MIB, MIN_PART_SIZE, VerifiedUpload

# SigV4 presigned URLs are valid for at most seven days.
MAX_PRESIGN_S = 7 * 24 * 3600
# A dead endpoint must fail in seconds: short connect timeout, few retries.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 60.0
MAX_ATTEMPTS = 3


class _TranslatedBody:
    """A botocore body whose read errors become registry errors."""

    def __init__(self, body: Any, translate: Any) -> None:
        self._body = body
        self._translate = translate

    def read(self, n: int = -1) -> bytes:
        with self._translate():
            return bytes(self._body.read(n))


def _hash_only(stream: _TranslatedBody, sha256: str, size: int) -> None:
    digest = hashlib.sha256()
    total = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        total += len(chunk)
    if digest.hexdigest() != sha256 or total != size:
        raise ChecksumMismatch(
            f"uploaded bytes ({total}) hash to {digest.hexdigest()[:12]}, not {sha256[:12]}",
            details={"expected": sha256, "actual": digest.hexdigest()},
        )


class S3BlobStore:
    """Content-addressed, write-once blobs at ``s3://bucket/prefix/sha256/ab/cdef...``.

    ``client`` injects a ready boto3 S3 client; otherwise one is built on first use (the
    constructor does no I/O) from the standard AWS environment, with short timeouts.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        part_size: int = 16 * MIB,
        max_concurrency: int = 4,
        client: Any | None = None,
        profile: str | None = None,
    ) -> None:
        if not bucket:
            raise InvalidInput("an S3 store needs a bucket name")
        if part_size < MIN_PART_SIZE:
            raise InvalidInput(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        if max_concurrency < 1:
            raise InvalidInput("max_concurrency must be at least 1")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.profile = profile
        self._client = client
        self._owns_client = client is None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3BlobStore({self.url!r}, endpoint_url={self.endpoint_url!r})"

    @property
    def client(self) -> Any:
        """The boto3 S3 client (thread-safe; shared by the part-upload threads)."""
        if self._client is None:
            with self._client_lock, self._translate("creating the S3 client"):
                if self._client is None:
                    self._client = _make_client(
                        self.endpoint_url, self.max_concurrency, self.profile
                    )
        return self._client

    def close(self) -> None:
        """Close the HTTP connections of a client this store built (an injected one is
        the caller's to close); the store reconnects if used again."""
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            client.close()

    def _key(self, sha256: str) -> str:
        key = blob_key(check_sha256(sha256))
        return f"{self.prefix}/{key}" if self.prefix else key

    def _where(self) -> str:
        return self.url + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    @contextlib.contextmanager
    def _translate(self, doing: str, sha256: str | None = None) -> Iterator[None]:
        """Turn botocore errors raised inside the block into registry errors."""
        try:
            yield
        except ClientError as exc:
            raise self._client_error(exc, doing, sha256) from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 store {self._where()} failed {doing}: {exc}") from exc

    def _client_error(self, exc: ClientError, doing: str, sha256: str | None) -> LoraregError:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket" or (sha256 is None and code in ("404", "NotFound")):
            return StorageUnavailable(f"bucket {self.bucket!r} does not exist ({self._where()})")
        if sha256 is not None and (code in ("NoSuchKey", "NotFound", "404") or status == 404):
            return BlobNotFound(f"blob {sha256} not found")
        if code == "InvalidRange" or status == 416:
            return RangeNotSatisfiable(f"range is past the end of blob {sha256}")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageUnavailable(
                f"access denied to {self._where()} {doing}; check the AWS credentials ({code})"
            )
        return StorageUnavailable(f"S3 store {self._where()} failed {doing}: {code or status}")

    def exists(self, sha256: str) -> bool:
        """True when the object is stored (multipart uploads are invisible until complete)."""
        try:
            self.size(sha256)
        except BlobNotFound:
            return False
        return True

    def size(self, sha256: str) -> int:
        """The blob's size in bytes; BlobNotFound when absent."""
        with self._translate(f"looking up blob {sha256}", sha256):
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        return int(head["ContentLength"])

    def put_file(self, sha256: str, path: Path, *, progress: Progress | None = None) -> bool:
        """Upload a local file under its sha256, hashing it in the same single read.

        False when the blob already exists (the file is not read). ChecksumMismatch, with
        nothing stored, when the bytes do not hash to ``sha256``.
        """
        if self.exists(sha256):
            return False
        with open(path, "rb") as f:
            hint = os.fstat(f.fileno()).st_size
            return self._upload(sha256, f, size=None, size_hint=hint, progress=progress)

    def put_stream(self, sha256: str, stream: BinaryIO, *, size: int | None = None) -> bool:
        """Upload bytes read from ``stream`` until EOF; see ``put_file``.

        When ``size`` is given, a stream of any other length is an ChecksumMismatch too.
        """
        if self.exists(sha256):
            return False
        return self._upload(sha256, stream, size=size, size_hint=size, progress=None)

    def _upload(
        self,
        sha256: str,
        stream: BinaryIO,
        *,
        size: int | None,
        size_hint: int | None,
        progress: Progress | None,
    ) -> bool:
        VerifiedUpload(
            client=self.client,
            bucket=self.bucket,
            key=self._key(sha256),
            sha256=sha256,
            translate=self._translate,
            part_size=self.part_size,
            max_concurrency=self.max_concurrency,
            progress=progress,
        ).run(stream, size=size, size_hint=size_hint)
        return True

    def iter_bytes(self, sha256: str, *, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Stream the blob's bytes; BlobNotFound (raised by this call) when absent."""
        with self._translate(f"reading blob {sha256}", sha256):
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))["Body"]

        def read(n: int) -> bytes:
            with self._translate(f"reading blob {sha256}", sha256):
                return bytes(body.read(n))

        return ChunkIterator(read, body.close, chunk_size)

    def read_range(self, sha256: str, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length), fewer at the end; RangeNotSatisfiable past the end."""
        check_range(offset, length)
        if length == 0:
            # HTTP cannot express an empty range; answer from the size alone.
            if offset >= self.size(sha256):
                raise RangeNotSatisfiable(f"offset {offset} is past the end of blob {sha256}")
            return b""
        with self._translate(f"reading blob {sha256}", sha256):
            resp = self.client.get_object(
                Bucket=self.bucket,
                Key=self._key(sha256),
                Range=f"bytes={offset}-{offset + length - 1}",
            )
            body = resp["Body"]
            try:
                if "ContentRange" not in resp:
                    # The server ignored the range, which S3 does for empty objects.
                    if int(resp.get("ContentLength", 0)) <= offset:
                        raise RangeNotSatisfiable(
                            f"offset {offset} is past the end of blob {sha256}"
                        )
                    raise StorageUnavailable(f"{self._where()} ignored a Range request")
                return bytes(body.read())
            finally:
                body.close()

    def delete(self, sha256: str) -> None:
        """Remove a blob; absent is not an error (S3 deletes are idempotent)."""
        with self._translate(f"deleting blob {sha256}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob, paging through ``list_objects_v2``; stray keys are skipped."""
        start = f"{self.prefix}/sha256/" if self.prefix else "sha256/"
        paginator = self.client.get_paginator("list_objects_v2")
        with self._translate("listing blobs"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for obj in page.get("Contents", []):
                    rest = obj["Key"][len(start) :]
                    sha = rest[:2] + rest[3:]
                    if rest[2:3] == "/" and SHA256_RE.match(sha):
                        yield BlobInfo(
                            sha256=sha, size=int(obj["Size"]), modified=obj["LastModified"]
                        )

    def presign_get(
        self, sha256: str, *, expires_s: int, filename: str | None = None
    ) -> str | None:
        """A URL that GETs the blob (Range requests included) without credentials.

        With ``filename`` the response carries ``Content-Disposition: attachment``.
        """
        params = {"Bucket": self.bucket, "Key": self._key(sha256)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        with self._translate(f"signing a download of blob {sha256}"):
            return str(
                self.client.generate_presigned_url(
                    "get_object", Params=params, ExpiresIn=_check_expiry(expires_s)
                )
            )

    def _staging_key(self, upload_id: str) -> str:
        key = f"staging/{check_upload_id(upload_id)}"
        return f"{self.prefix}/{key}" if self.prefix else key

    def presign_staged_put(self, upload_id: str, size: int, *, expires_s: int) -> str | None:
        """A URL that accepts one PUT of exactly ``size`` bytes at the upload's staging key.

        The length is signed (S3 refuses any other ``Content-Length``); the bytes are
        trusted only once ``store_staged`` has hashed them. A stale URL can only ever
        rewrite its own staging key, never a blob.
        """
        if size < 0:
            raise InvalidInput(f"invalid size {size}")
        params = {"Bucket": self.bucket, "Key": self._staging_key(upload_id), "ContentLength": size}
        with self._translate("signing an upload"):
            return str(
                self.client.generate_presigned_url(
                    "put_object", Params=params, ExpiresIn=_check_expiry(expires_s)
                )
            )

    def store_staged(self, upload_id: str, sha256: str, size: int) -> None:
        """Stream the staged bytes once: hash them and, unless the blob is already stored,
        upload them to its key through ``VerifiedUpload`` (visible only on a match). The
        bytes that reach the blob are the bytes hashed, whatever is PUT to the staging key
        meanwhile; the staged object is deleted either way."""
        key = self._staging_key(upload_id)
        with self._translate(f"reading the staged upload of blob {sha256}", sha256):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        stream = _TranslatedBody(body, lambda: self._translate(f"reading blob {sha256}", sha256))
        try:
            if self.exists(sha256):
                _hash_only(stream, sha256, size)
            else:
                self._upload(sha256, stream, size=size, size_hint=size, progress=None)  # type: ignore[arg-type]
        finally:
            body.close()
            self.delete_staged(upload_id)

    def delete_staged(self, upload_id: str) -> None:
        """Remove a staged upload; absent is not an error."""
        with self._translate("deleting a staged upload"):
            self.client.delete_object(Bucket=self.bucket, Key=self._staging_key(upload_id))

    def list_leftovers(self) -> Iterator[Leftover]:
        """Staged uploads never stored, and unfinished multipart uploads (killed writers)."""
        base = f"{self.prefix}/" if self.prefix else ""
        with self._translate("listing staged uploads"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + "staging/"
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    yield Leftover(
                        kind="staged upload",
                        name=f"s3://{self.bucket}/{obj['Key']}",
                        size=int(obj["Size"]),
                        modified=obj["LastModified"],
                        ref=obj["Key"].rsplit("/", 1)[-1],
                    )
        with self._translate("listing unfinished uploads"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=base + "sha256/"
            )
            for page in pages:
                for up in page.get("Uploads", []):
                    size, latest = self._parts(up["Key"], up["UploadId"])
                    yield Leftover(
                        kind="multipart upload",
                        name=f"s3://{self.bucket}/{up['Key']}",
                        size=size,
                        # The newest part: an upload still sending parts is alive (and
                        # moto reports a fixed date as every upload's Initiated).
                        modified=max(up["Initiated"], latest or up["Initiated"]),
                        ref=f"{up['Key']}\n{up['UploadId']}",
                    )

    def _parts(self, key: str, upload_id: str) -> tuple[int, Any]:
        """Bytes sent so far and when the newest part arrived (None: no part yet)."""
        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=key, UploadId=upload_id
        )
        try:
            parts = [p for page in pages for p in page.get("Parts", [])]
        except ClientError:  # completed or aborted meanwhile
            return 0, None
        return sum(int(p["Size"]) for p in parts), max(
            (p["LastModified"] for p in parts), default=None
        )

    def remove_leftover(self, item: Leftover) -> None:
        """Delete a staged upload, or abort an unfinished multipart upload."""
        if item.kind == "staged upload":
            self.delete_staged(item.ref)
            return
        key, _, upload_id = item.ref.partition("\n")
        base = f"{self.prefix}/sha256/" if self.prefix else "sha256/"
        if item.kind != "multipart upload" or not key.startswith(base) or not upload_id:
            raise InvalidInput(f"not a leftover of {self.url}: {item.name}")
        with self._translate("aborting an unfinished upload"):
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise

    def check(self) -> None:
        """StorageUnavailable unless the bucket answers (and exists) within seconds."""
        with self._translate("checking the bucket"):
            self.client.head_bucket(Bucket=self.bucket)


def _make_client(endpoint_url: str | None, max_concurrency: int, profile: str | None) -> Any:
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        max_pool_connections=max(10, max_concurrency + 2),
        signature_version="s3v4",
        # MinIO, Ceph and most self-hosted endpoints need path-style addressing.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    # A fresh Session per store: a shared default session is not thread-safe. ``profile``
    # picks a named credentials chain (each region its own). botocore's own session, not
    # boto3's: the same client, credentials chain and region, without importing boto3 and
    # s3transfer (a third of a second of every S3 command's start-up; neither is used here).
    session = botocore.session.Session(profile=profile)
    return session.create_client("s3", endpoint_url=endpoint_url, config=config)


def _check_expiry(expires_s: int) -> int:
    if not 1 <= expires_s <= MAX_PRESIGN_S:
        raise InvalidInput(f"expires_s must be between 1 and {MAX_PRESIGN_S}, got {expires_s}")
    return expires_s


_UNSAFE_IN_QUOTES = re.compile(r'[^\x20-\x7e]|["\\]')


def content_disposition(filename: str) -> str:
    """An ``attachment`` header value for ``filename`` (RFC 6266, with a UTF-8 form)."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1] or "download"
    plain = _UNSAFE_IN_QUOTES.sub("_", name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"
