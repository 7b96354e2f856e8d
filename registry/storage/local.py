"""A BlobStore on a local (or mounted) filesystem: the embedded deployment's weights.

Layout under ``root``: ``sha256/ab/cdef...`` for blobs (see ``blob_key``) and ``tmp/``
for uploads in progress. A blob is written to ``tmp/``, hashed while it is written,
fsynced, then renamed into place, so a crash never leaves a partial blob at its final
key; at worst it leaves a ``tmp/*.part`` file that is safe to delete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from registry.errors import (
    BlobNotFound,
    ChecksumMismatch,
    InvalidInput,
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
    scan_temp_files,
)

# Blobs are shared between users of one registry (serve, worker, CLI); temp files are
# created 0600, so widen them before they become visible.
_BLOB_MODE = 0o644


class LocalBlobStore:
    """Content-addressed, write-once blobs under ``root``.

    The constructor touches nothing on disk; folders are created on first write (or by
    ``check``).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, sha256: str) -> Path:
        # check_sha256 also keeps a caller's string from escaping root.
        return self.root / blob_key(check_sha256(sha256))

    @property
    def _tmp(self) -> Path:
        return self.root / "tmp"

    def exists(self, sha256: str) -> bool:
        """True when the blob is fully stored (partial uploads live only in ``tmp/``)."""
        return self._path(sha256).is_file()

    def size(self, sha256: str) -> int:
        """The blob's size in bytes; BlobNotFound when absent."""
        path = self._path(sha256)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob {sha256} not found") from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot stat {path}: {exc}") from exc

    def put_file(self, sha256: str, path: Path, *, progress: Progress | None = None) -> bool:
        """Copy a local file in under its sha256, verifying it while copying.

        False when the blob was already stored (the file is not read). ChecksumMismatch,
        with nothing stored, when the bytes do not hash to ``sha256``.
        """
        if self.exists(sha256):
            return False
        with open(path, "rb") as src:
            return self._write(sha256, src, size=None, progress=progress)

    def adopt_file(self, sha256: str, path: Path) -> bool:
        """Move a file that this process wrote, hashed as it wrote it and flushed to disk,
        into the store under that hash, without reading it again (a merge's output shards).

        The caller vouches for the hash (it fed every byte it wrote to it) and for
        durability (fsync). The file is renamed into place, so it is gone from ``path``
        afterwards; on another filesystem it is copied and verified as ``put_file`` does.
        False when the blob was already stored (``path`` is left alone).
        """
        if self.exists(sha256):
            return False
        final = self._path(sha256)
        try:
            with _storage_errors(f"cannot move blob {sha256} into {final.parent}"):
                os.chmod(path, _BLOB_MODE)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, final)  # atomic; a concurrent writer stored the same bytes
                _fsync_dir(final.parent)
        except StorageUnavailable as exc:
            if not isinstance(exc.__cause__, OSError) or exc.__cause__.errno != errno.EXDEV:
                raise
            return self.put_file(sha256, path)
        return True

    def put_stream(self, sha256: str, stream: BinaryIO, *, size: int | None = None) -> bool:
        """Store bytes read from ``stream`` until EOF; see ``put_file``.

        When ``size`` is given, a stream of any other length is an ChecksumMismatch too.
        """
        if self.exists(sha256):
            return False
        return self._write(sha256, stream, size=size, progress=None)

    def _write(
        self, sha256: str, src: BinaryIO, *, size: int | None, progress: Progress | None
    ) -> bool:
        final = self._path(sha256)
        with _storage_errors(f"cannot write under {self.root}"):
            self._tmp.mkdir(parents=True, exist_ok=True)
            # The writer's pid in the name: gc never removes a live writer's file.
            fd, tmp_name = tempfile.mkstemp(
                dir=self._tmp, prefix=f"{sha256[:16]}.{os.getpid()}.", suffix=".part"
            )
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            written = 0
            with os.fdopen(fd, "wb") as out:
                # Errors reading ``src`` are the caller's and propagate unchanged.
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    with _storage_errors(f"cannot write blob {sha256} to {tmp}"):
                        out.write(chunk)
                    written += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
                with _storage_errors(f"cannot write blob {sha256} to {tmp}"):
                    out.flush()
                    # Durable before it becomes visible: the rename must not outrun the data.
                    os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise ChecksumMismatch(
                    f"bytes hash to {digest.hexdigest()}, not {sha256}",
                    details={"expected": sha256, "actual": digest.hexdigest()},
                )
            if size is not None and written != size:
                raise ChecksumMismatch(f"blob {sha256}: got {written} bytes, expected {size}")
            with _storage_errors(f"cannot move blob {sha256} into {final.parent}"):
                os.chmod(tmp, _BLOB_MODE)
                final.parent.mkdir(parents=True, exist_ok=True)
                # Atomic on one filesystem; a concurrent writer of this sha wrote the same bytes.
                os.replace(tmp, final)
                _fsync_dir(final.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return True

    def iter_bytes(self, sha256: str, *, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Stream the blob's bytes; BlobNotFound (raised by this call) when absent."""
        path = self._path(sha256)
        try:
            f = open(path, "rb")  # noqa: SIM115 - ChunkIterator owns and closes it
        except FileNotFoundError:
            raise BlobNotFound(f"blob {sha256} not found") from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot open {path}: {exc}") from exc
        return ChunkIterator(f.read, f.close, chunk_size)

    def read_range(self, sha256: str, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length), fewer at the end; RangeNotSatisfiable past the end."""
        check_range(offset, length)
        path = self._path(sha256)
        try:
            with open(path, "rb") as f:
                total = os.fstat(f.fileno()).st_size
                if offset >= total:
                    raise RangeNotSatisfiable(
                        f"offset {offset} is past the end of blob {sha256} ({total} bytes)"
                    )
                f.seek(offset)
                return f.read(length)
        except FileNotFoundError:
            raise BlobNotFound(f"blob {sha256} not found") from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {path}: {exc}") from exc

    def delete(self, sha256: str) -> None:
        """Remove a blob; absent is not an error."""
        path = self._path(sha256)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete {path}: {exc}") from exc

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob, walking ``sha256/*/*``; stray files are skipped."""
        top = self.root / "sha256"
        try:
            fanouts = sorted(os.scandir(top), key=lambda e: e.name)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageUnavailable(f"cannot list {top}: {exc}") from exc
        for fanout in fanouts:
            if not fanout.is_dir():
                continue
            for entry in sorted(os.scandir(fanout.path), key=lambda e: e.name):
                sha = fanout.name + entry.name
                if not SHA256_RE.match(sha) or not entry.is_file():
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:  # deleted while we walked (gc racing fsck)
                    continue
                yield BlobInfo(
                    sha256=sha,
                    size=st.st_size,
                    modified=datetime.fromtimestamp(st.st_mtime, tz=UTC),
                )

    def presign_get(self, sha256: str, *, expires_s: int, filename: str | None = None) -> None:
        """None: local blobs are served through the registry itself."""
        return None

    def presign_staged_put(self, upload_id: str, size: int, *, expires_s: int) -> None:
        """None: uploads go through the registry itself, verified on the way in."""
        return None

    def store_staged(self, upload_id: str, sha256: str, size: int) -> None:
        """Nothing is ever staged here (no presigned uploads): BlobNotFound."""
        check_upload_id(upload_id)
        raise BlobNotFound(f"blob {sha256} not found")

    def delete_staged(self, upload_id: str) -> None:
        """Nothing is ever staged here."""
        check_upload_id(upload_id)

    def list_leftovers(self) -> Iterator[Leftover]:
        """Files in ``tmp/``: every one is a write in progress or a killed writer's."""
        return scan_temp_files(self._tmp, "temp file")

    def remove_leftover(self, item: Leftover) -> None:
        """Delete a file of ``tmp/`` (by its name only: nothing outside ``tmp/``)."""
        name = Path(item.ref).name
        if not name or name in (".", ".."):
            raise InvalidInput(f"not a temp file: {item.ref!r}")
        with _storage_errors(f"cannot delete {self._tmp / name}"):
            (self._tmp / name).unlink(missing_ok=True)

    def check(self) -> None:
        """Create the folders if needed and prove a file can be written and removed."""
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self._tmp, prefix="check.") as probe:
                probe.write(b"ok")
                probe.flush()
        except OSError as exc:
            raise StorageUnavailable(f"blob folder {self.root} is not usable: {exc}") from exc


@contextlib.contextmanager
def _storage_errors(message: str) -> Iterator[None]:
    """OSError from the block becomes StorageUnavailable (disk full, read-only, denied)."""
    try:
        yield
    except OSError as exc:
        raise StorageUnavailable(f"{message}: {exc}") from exc


def _fsync_dir(path: Path) -> None:
    # Persist the rename itself; some filesystems (and non-POSIX platforms) refuse, which is fine.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
