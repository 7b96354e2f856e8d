"""The BlobStore protocol: content-addressed, write-once storage of weight files.

Blobs are addressed by the sha256 of their bytes. Every implementation:
- verifies the sha256 while it streams bytes in, and stores nothing on a mismatch;
- is write-once: storing a blob that exists is a no-op;
- never holds a whole file in memory;
- translates its vendor errors into ``registry.errors`` (BlobNotFound, ChecksumMismatch,
  StorageUnavailable, RangeNotSatisfiable) at its edge.
``tests/storage/test_contract.py`` runs one suite against every implementation.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
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


@dataclass(frozen=True)
class Leftover:
    """Something a crashed writer left behind: a temp file, a staged or multipart upload.

    ``ref`` is what the store needs to remove it (a path, a key, an upload id); ``pid`` is
    the writer's process id on this host when the name records one (a live writer's
    leftovers are never removed).
    """

    kind: str
    name: str
    size: int
    modified: datetime
    ref: str = ""
    pid: int | None = None


def writer_pid(name: str) -> int | None:
    """The pid a temp file's name records (``<sha16>.<pid>.<random>.part``,
    ``lorareg-upload-<pid>-<random>``), or None."""
    m = re.match(r"^(?:[0-9a-f]{16}\.|lorareg-upload-)(\d{1,9})[.-]", name)
    return int(m.group(1)) if m else None


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this host (or may: we cannot signal it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, owned by someone else
        return True
    return True


def scan_temp_files(folder: Path, kind: str, prefix: str = "") -> Iterator[Leftover]:
    """The files of ``folder`` whose names start with ``prefix``, as leftovers of ``kind``,
    by name: a writer's own temp files (live or killed), for upkeep to list and sweep."""
    from registry.errors import StorageUnavailable

    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageUnavailable(f"cannot list {folder}: {exc}") from exc
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # finished or removed while we walked
            continue
        yield Leftover(
            kind=kind,
            name=entry.path,
            size=st.st_size,
            modified=datetime.fromtimestamp(st.st_mtime, tz=UTC),
            ref=entry.name,
            pid=writer_pid(entry.name),
        )


UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def check_upload_id(upload_id: str) -> str:
    if not UPLOAD_ID_RE.match(upload_id):
        raise InvalidInput(f"{upload_id!r} is not an upload id (32 lowercase hex digits)")
    return upload_id


@runtime_checkable
class BlobStore(Protocol):
    """Blob keys only ever receive bytes verified against their sha256, so a stored blob
    never changes. Clients that upload straight to the store (presigned URLs) write to a
    per-upload staging key; ``store_staged`` verifies those bytes and stores them."""

    url: str

    def exists(self, sha256: str) -> bool:
        """True when the blob is fully stored."""

    def size(self, sha256: str) -> int:
        """The blob's size in bytes; BlobNotFound when absent."""

    def put_file(self, sha256: str, path: Path, *, progress: Progress | None = None) -> bool:
        """Store a local file under its sha256; False when it was already there."""

    def put_stream(self, sha256: str, stream: BinaryIO, *, size: int | None = None) -> bool:
        """Store bytes read from ``stream``; ChecksumMismatch (and nothing stored) on mismatch."""

    def iter_bytes(self, sha256: str, *, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Stream the blob's bytes; BlobNotFound when absent."""

    def read_range(self, sha256: str, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length), fewer at the end; RangeNotSatisfiable past the end."""

    def delete(self, sha256: str) -> None:
        """Remove a blob; absent is not an error."""

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob (for gc and fsck)."""

    def presign_get(
        self, sha256: str, *, expires_s: int, filename: str | None = None
    ) -> str | None:
        """A URL a client can GET without credentials, or None where the store has none."""

    def presign_staged_put(self, upload_id: str, size: int, *, expires_s: int) -> str | None:
        """A URL a client can PUT ``size`` bytes to, at upload ``upload_id``'s staging key
        (never at a blob's key), or None: upload through the server."""

    def store_staged(self, upload_id: str, sha256: str, size: int) -> None:
        """Verify the bytes staged for ``upload_id`` and store them as blob ``sha256``;
        the staged copy is removed. ChecksumMismatch when they do not hash to ``sha256``
        or have another size; BlobNotFound when nothing was staged."""

    def delete_staged(self, upload_id: str) -> None:
        """Remove a staged upload; absent is not an error."""

    def list_leftovers(self) -> Iterator[Leftover]:
        """What interrupted writers left: temp files, staged and unfinished uploads."""

    def remove_leftover(self, item: Leftover) -> None:
        """Remove one item of ``list_leftovers`` (an unfinished upload is aborted)."""

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
