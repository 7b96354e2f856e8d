"""The BlobStore protocol: content-addressed, write-once storage of weight files.

Blobs are addressed by the sha256 of their bytes. Every implementation:
- verifies the sha256 while it streams bytes in, and stores nothing on a mismatch;
- is write-once: storing a blob that exists is a no-op;
- never holds a whole file in memory;
- translates its vendor errors into ``registry.errors`` (BlobNotFound, IntegrityError,
  StorageUnavailable, RangeNotSatisfiable) at its edge.
``tests/storage/test_contract.py`` runs one suite against every implementation.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from registry.errors import InvalidInput

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024

Progress = Callable[[int], None]
"""Called with the number of bytes just transferred."""


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    size: int
    modified: datetime


def check_sha256(sha256: str) -> str:
    if not SHA256_RE.match(sha256):
        raise InvalidInput(f"{sha256!r} is not a sha256 (64 lowercase hex digits)")
    return sha256


def check_range(offset: int, length: int) -> None:
    """InvalidInput for a negative offset or length (read_range's precondition)."""
    if offset < 0 or length < 0:
        raise InvalidInput(f"invalid range: offset={offset} length={length}")


def blob_key(sha256: str) -> str:
    """The object key of a blob, fanned out so no folder holds millions of entries."""
    return f"sha256/{sha256[:2]}/{sha256[2:]}"


@runtime_checkable
class BlobStore(Protocol):
    url: str
    # True when bytes can reach the store without passing its sha256 check (presigned
    # PUTs): the catalog then re-hashes a new blob before a version may reference it.
    accepts_unverified_writes: bool

    def exists(self, sha256: str) -> bool:
        """True when the blob is fully stored."""

    def size(self, sha256: str) -> int:
        """The blob's size in bytes; BlobNotFound when absent."""

    def put_file(self, sha256: str, path: Path, *, progress: Progress | None = None) -> bool:
        """Store a local file under its sha256; False when it was already there."""

    def put_stream(self, sha256: str, stream: BinaryIO, *, size: int | None = None) -> bool:
        """Store bytes read from ``stream``; IntegrityError (and nothing stored) on mismatch."""

    def iter_bytes(self, sha256: str, *, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Stream the blob's bytes; BlobNotFound when absent."""

    def read_range(self, sha256: str, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length), fewer at the end; RangeNotSatisfiable past the end."""

    def delete(self, sha256: str) -> None:
        """Remove a blob; absent is not an error."""

    def touch(self, sha256: str) -> None:
        """Make the blob's modified time now, restarting gc's grace period for it (a push
        about to reference an unreferenced blob calls this); BlobNotFound when absent."""

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob (for gc and fsck)."""

    def presign_get(
        self, sha256: str, *, expires_s: int, filename: str | None = None
    ) -> str | None:
        """A URL a client can GET without credentials, or None where the store has none."""

    def presign_put(self, sha256: str, size: int, *, expires_s: int) -> str | None:
        """A URL a client can PUT the blob's bytes to, or None (upload through the server)."""

    def check(self) -> None:
        """Raise StorageUnavailable when the store cannot be reached."""


class ChunkIterator:
    """Chunks from ``read`` until it returns ``b""``; the source is closed when the
    iterator is exhausted, fails, is closed, or is garbage-collected unstarted.

    Stores return this instead of a generator so that a missing blob raises at call
    time (a generator would only raise on the first ``next``) while an abandoned
    iterator still releases its file or HTTP connection.
    """

    def __init__(
        self, read: Callable[[int], bytes], close: Callable[[], None], chunk_size: int
    ) -> None:
        if chunk_size <= 0:
            raise InvalidInput(f"chunk_size must be positive, got {chunk_size}")
        self._read = read
        self._close: Callable[[], None] | None = close
        self._chunk_size = chunk_size

    def __iter__(self) -> ChunkIterator:
        return self

    def __next__(self) -> bytes:
        if self._close is None:
            raise StopIteration
        try:
            chunk = self._read(self._chunk_size)
        except BaseException:
            self.close()
            raise
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        """Release the source; further iteration yields nothing."""
        close, self._close = self._close, None
        if close is not None:
            close()

    def __del__(self) -> None:
        # Best effort: a finaliser must not raise.
        with contextlib.suppress(Exception):
            self.close()
