"""One-pass, verified uploads to S3: hash while sending, make visible only on a match.

Each part is hashed as it is read and sent with ``upload_part`` (a few in parallel); the
multipart upload is completed only when the whole stream hashed to the expected sha256,
and aborted otherwise, so a bad upload never appears at its key and a file that changes
while it is read cannot be stored under a stale hash. Memory stays within
``(max_concurrency + 1) * part_size``. Blobs under one part go up in one ``put_object``
after the same check.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, BinaryIO

from registry.errors import ChecksumMismatch, InvalidInput
from registry.storage.base import Progress

MIB = 1024 * 1024
# S3 refuses parts under 5 MiB (except the last) and uploads of more than 10,000 parts.
MIN_PART_SIZE = 5 * MIB
MAX_PARTS = 10_000

Translate = Callable[[str], AbstractContextManager[None]]
"""Wraps a block so botocore errors raised in it become registry errors."""


@dataclass
class VerifiedUpload:
    """Uploads one blob to ``bucket``/``key``; ``run`` stores it or stores nothing."""

    client: Any
    bucket: str
    key: str
    sha256: str
    translate: Translate
    part_size: int
    max_concurrency: int
    progress: Progress | None = None

    def run(self, stream: BinaryIO, *, size: int | None, size_hint: int | None) -> None:
        """Read ``stream`` to EOF and store it; ChecksumMismatch (nothing stored) on a
        sha256 mismatch, or when ``size`` is given and the length differs."""
        if size_hint:
            # Grow parts for huge blobs so they fit in S3's 10,000-part limit.
            needed = math.ceil(size_hint / MAX_PARTS / MIB) * MIB
            self.part_size = max(self.part_size, needed)
        digest = hashlib.sha256()
        first = read_exact(stream, self.part_size)
        digest.update(first)
        if len(first) < self.part_size:
            self._verify(digest, len(first), size)
            with self.translate(f"storing blob {self.sha256}"):
                self.client.put_object(
                    Bucket=self.bucket, Key=self.key, Body=first, Metadata={"sha256": self.sha256}
                )
            self._report(len(first))
            return
        extra = self._checksum_args()
        with self.translate(f"starting the upload of blob {self.sha256}"):
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, Metadata={"sha256": self.sha256}, **extra
            )["UploadId"]
        try:
            # Hand over the only reference, so the first part is freed once it is sent.
            box, first = [first], b""
            parts, total = self._send_parts(upload_id, stream, box, digest, size, extra)
            self._verify(digest, total, size)
            with self.translate(f"completing the upload of blob {self.sha256}"):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            # Best effort; `lorareg gc` aborts what a killed writer leaves.
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id
                )
            raise

    def _send_parts(
        self,
        upload_id: str,
        stream: BinaryIO,
        box: list[bytes],
        digest: Any,
        size: int | None,
        extra: dict[str, str],
    ) -> tuple[list[dict[str, Any]], int]:
        """Upload the part in ``box`` then the rest of ``stream``; return the parts and total."""
        parts: list[dict[str, Any]] = []
        pending: deque[tuple[Future[dict[str, Any]], int]] = deque()
        total = 0

        def collect() -> None:
            future, nbytes = pending.popleft()
            parts.append(future.result())
            self._report(nbytes)

        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="s3-part") as pool:
            number = 1
            data = box.pop()
            while data:
                total += len(data)
                if size is not None and total > size:
                    raise ChecksumMismatch(f"stream is longer than the declared {size} bytes")
                if number > MAX_PARTS:
                    raise InvalidInput(f"blob exceeds {MAX_PARTS} parts of {self.part_size} bytes")
                future = pool.submit(self._upload_part, upload_id, number, data, extra)
                pending.append((future, len(data)))
                # Bound memory: wait for the oldest part before reading another.
                if len(pending) >= self.max_concurrency:
                    collect()
                number += 1
                data = read_exact(stream, self.part_size)
                digest.update(data)
            while pending:
                collect()
        return parts, total

    def _upload_part(
        self, upload_id: str, number: int, data: bytes, extra: dict[str, str]
    ) -> dict[str, Any]:
        with self.translate(f"uploading part {number} of blob {self.sha256}"):
            resp = self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                **extra,
            )
        part: dict[str, Any] = {"ETag": resp["ETag"], "PartNumber": number}
        if "ChecksumAlgorithm" in extra:
            # Completing an upload created with a checksum algorithm needs every part's.
            member = "Checksum" + extra["ChecksumAlgorithm"]
            if member in resp:
                part[member] = resp[member]
        return part

    def _checksum_args(self) -> dict[str, str]:
        # Mirror s3transfer: botocore's default checksums need the algorithm on the upload.
        calculation = getattr(self.client.meta.config, "request_checksum_calculation", None)
        return {"ChecksumAlgorithm": "CRC32"} if calculation == "when_supported" else {}

    def _verify(self, digest: Any, total: int, size: int | None) -> None:
        actual = digest.hexdigest()
        if actual != self.sha256:
            raise ChecksumMismatch(
                f"bytes hash to {actual}, not {self.sha256}",
                details={"expected": self.sha256, "actual": actual},
            )
        if size is not None and total != size:
            raise ChecksumMismatch(f"blob {self.sha256}: got {total} bytes, expected {size}")

    def _report(self, nbytes: int) -> None:
        if self.progress is not None:
            self.progress(nbytes)


def read_exact(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at EOF (a socket or pipe may return short reads)."""
    first = stream.read(n)
    if not first or len(first) == n:
        return first
    buf = bytearray(first)
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)
