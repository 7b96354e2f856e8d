"""Moving adapter bytes between a folder and the registry, shared by both clients.

Push side: scan and validate the folder locally (so bad input is refused before a byte is
uploaded), hash every file (on a thread started as the command starts, see ``hash_ahead``,
keeping each file's first bytes so the commit need not read them back from storage).
Pull side: stream each file into a temporary folder next to the destination while hashing
it, verify, and rename the folder into place at the end, so a failed or corrupt pull leaves
nothing behind. A local cache keyed by sha256 makes a repeated pull a local copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.domain import FileEntry, VersionInfo
from registry.errors import AlreadyExists, ChecksumMismatch
from registry.storage.base import BlobStore, blob_key

if TYPE_CHECKING:
    from registry.catalog.hash_index import HashIndex

Progress = Callable[[int], None]
CHUNK = 4 * 1024 * 1024
# The first bytes of each file hashed, kept: they hold adapter_config.json and the
# safetensors header, all that validating the stored adapter at commit reads.
HEAD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Hashed:
    """A file's sha256 and length as one read computed them, with its first bytes (the
    bytes that hashed to ``sha256``, so they are the stored blob's once it is verified)."""

    sha256: str
    size: int
    head: bytes


def hash_file(path: Path, *, progress: Progress | None = None) -> Hashed:
    h = hashlib.sha256()
    head = b""
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            if size < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - size]
            size += len(chunk)
            if progress:
                progress(len(chunk))
    return Hashed(h.hexdigest(), size, head)


@dataclass(frozen=True)
class LocalAdapter:
    """A validated adapter folder: its manifest and where each file lives.

    ``read`` holds what this process hashed by reading (not what the hash index
    remembered), by sha256."""

    files: list[FileEntry]
    paths: dict[str, Path]
    base_model: str | None
    read: dict[str, Hashed] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


class HashAhead:
    """Hashes a folder's files on a background thread, started as the command starts.

    Why not hash while uploading, from the same buffers: a blob's key is its sha256 and an
    S3 multipart upload is bound to its key when it starts, so a single pass would have to
    go to a staging key and be copied to the blob's key once the hash is known. Measured on
    moto (bench/transfer, 200 MB): CopyObject took 2.97 s, the extra hashing read 0.59 s
    (load 4; 0.2 s idle, from the page cache); on AWS a copy is server-side but still takes
    time in proportion to the size, and a blob that turns out to exist would have been sent
    for nothing (deduplication needs the hash before the bytes). So the hash comes first,
    but off the critical path: hashlib releases the GIL, so this thread runs on another core
    while the main thread imports, opens the catalog and the S3 client (about a second).
    The upload then reads the file once more and verifies every byte it sends
    (``VerifiedUpload``); a file unchanged since an earlier push is not read here at all
    (``HashIndex``). Results are used only for the files ``prepare_push`` finds, by path.
    """

    def __init__(self, folder: Path, index: HashIndex | None) -> None:
        self.folder = folder
        self.index = index
        self.results: dict[Path, tuple[list[int], tuple[str, int, Hashed | None]]] = {}
        # Imported here, on the calling thread: nothing is imported by the hashing thread.
        from registry.formats.adapter import scan_folder

        self._scan = scan_folder
        self._thread = threading.Thread(target=self._run, name="hash-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            paths = sorted(self._scan(self.folder).values())
            for p in paths:
                before = _signature(p)
                done = _hash_one(p, self.index, None)
                if _signature(p) == before:
                    self.results[p] = (before, done)
        except Exception:  # noqa: S110 - prepare_push hashes again and reports the error
            pass

    def join(self) -> dict[Path, tuple[str, int, Hashed | None]]:
        """The results for the files that still look as they did when hashed (a file
        written since is hashed again by the caller)."""
        self._thread.join()
        return {p: done for p, (sig, done) in self.results.items() if _signature(p) == sig}


def _signature(p: Path) -> list[int]:
    try:
        st = os.stat(p)
    except OSError:
        return []
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


_AHEAD: dict[Path, HashAhead] = {}


def hash_ahead(folder: Path, index: HashIndex | None) -> None:
    """Start hashing ``folder`` now; the next ``prepare_push`` of it uses the results."""
    try:
        key = folder.resolve()
    except OSError:
        return
    if key.is_dir() and key not in _AHEAD:
        _AHEAD[key] = HashAhead(key, index)


def drop_ahead(folder: Path) -> None:
    """Forget a ``hash_ahead`` of ``folder`` no ``prepare_push`` used (the push ended
    before it: refused, or answered without hashing), so it cannot answer a later push
    in the same process."""
    with contextlib.suppress(OSError):
        _AHEAD.pop(folder.resolve(), None)


def _hash_one(
    p: Path, index: HashIndex | None, progress: Progress | None
) -> tuple[str, int, Hashed | None]:
    """(sha256, size, what the read computed or None when the index answered)."""
    if index is None:
        done = hash_file(p, progress=progress)
        return done.sha256, done.size, done
    read: list[Hashed] = []

    def hashed(q: Path) -> str:
        read.append(hash_file(q, progress=progress))
        return read[0].sha256

    sha256, size = index.sha256(p, hashed)
    return sha256, size, read[0] if read else None


def prepare_push(
    folder: Path,
    *,
    max_header_bytes: int,
    progress: Progress | None = None,
    index: HashIndex | None = None,
) -> LocalAdapter:
    """Validate an adapter folder and hash its files (no byte leaves the machine).

    With ``index``, a file whose stat signature is unchanged since it was last hashed is
    not read again (see ``HashIndex``); the upload still verifies every byte it sends.
    A ``hash_ahead`` of the folder started earlier in the process answers for the files
    it hashed (its index is then the one used and saved).
    """
    from registry.formats.adapter import inspect_adapter, local_files

    try:
        ahead = _AHEAD.pop(folder.resolve(), None)
    except OSError:
        ahead = None
    files = local_files(folder)
    contents = inspect_adapter(files, max_header_bytes=max_header_bytes)
    paths = {rel: (folder / rel).resolve() for rel in files}
    early = ahead.join() if ahead is not None else {}
    if ahead is not None and ahead.index is not None:
        index = ahead.index  # one index object: the entries the thread added are saved once

    entries = []
    read: dict[str, Hashed] = {}
    for rel, p in sorted(paths.items()):
        sha256, size, done = early.get(p) or _hash_one(p, index, progress)
        if p in early and progress:
            progress(size)
        entries.append(FileEntry(path=rel, sha256=sha256, size=size))
        if done is not None and done.size == size:
            read[sha256] = done
    if index is not None:
        index.save()
    return LocalAdapter(
        files=entries,
        paths=paths,
        base_model=contents.config.base_model_name_or_path,
        read=read,
    )


class KnownBlobs:
    """A BlobStore that answers from what this process hashed itself, for blobs it has just
    stored through a verified upload of those very bytes: their size, and reads within
    their first bytes (adapter_config.json, the safetensors header) without a round trip.
    Everything else goes to ``store``. Only ``verified`` blobs are answered here: a blob
    that already existed is read back from storage as before."""

    def __init__(self, store: BlobStore, verified: dict[str, Hashed]) -> None:
        self._store = store
        self._known = verified
        self.url = store.url

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def exists(self, sha256: str) -> bool:
        return sha256 in self._known or self._store.exists(sha256)

    def size(self, sha256: str) -> int:
        known = self._known.get(sha256)
        return known.size if known is not None else self._store.size(sha256)

    def read_range(self, sha256: str, offset: int, length: int) -> bytes:
        known = self._known.get(sha256)
        # Only reads that start inside the blob and end inside the kept bytes (or the blob,
        # when all of it was kept); the store answers the rest, errors included.
        if (
            known is not None
            and 0 <= offset < known.size
            and length >= 0
            and (offset + length <= len(known.head) or len(known.head) == known.size)
        ):
            return known.head[offset : offset + length]
        return self._store.read_range(sha256, offset, length)


class BlobCache:
    """Verified blobs kept under ``cache_dir/blobs``, linked into place on later pulls."""

    def __init__(self, root: Path) -> None:
        self.root = root / "blobs"

    def path(self, sha256: str) -> Path:
        return self.root / blob_key(sha256)

    def copy_out(self, entry: FileEntry, dest: Path) -> bool:
        """Copy a cached blob to ``dest``, re-verifying it; False when absent or damaged."""
        src = self.path(entry.sha256)
        try:
            if src.stat().st_size != entry.size:
                return False
        except FileNotFoundError:
            return False
        h = hashlib.sha256()
        with open(src, "rb") as fin, open(dest, "wb") as fout:
            while chunk := fin.read(CHUNK):
                h.update(chunk)
                fout.write(chunk)
        if h.hexdigest() != entry.sha256:
            src.unlink(missing_ok=True)  # damaged in place: forget it, download again
            return False
        return True

    def keep(self, entry: FileEntry, verified: Path) -> None:
        """Remember a verified file: a hard link (no copy) when on the same filesystem."""
        target = self.path(entry.sha256)
        if target.exists():
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                os.link(verified, tmp)
            except OSError:
                shutil.copyfile(verified, tmp)
            os.replace(tmp, target)
        except OSError:
            pass  # the cache is an optimisation; a read-only cache must not fail a pull


def write_version(
    version: VersionInfo,
    dest: Path,
    *,
    fetch: Callable[[FileEntry], Iterator[bytes]],
    cache: BlobCache | None,
    force: bool = False,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Materialise a version's files at ``dest`` atomically; returns (downloaded, cached) bytes.

    Raises ChecksumMismatch when a file's bytes do not match its sha256; ``dest`` is then
    untouched.
    """
    dest = dest.resolve()
    if dest.exists() and not dest.is_dir():
        raise AlreadyExists(f"{dest} exists and is not a folder; choose another -o")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise AlreadyExists(f"{dest} already exists and is not empty; pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    from registry.formats.adapter import check_relative_path

    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    downloaded = cached = 0
    try:
        for entry in version.files:
            rel = check_relative_path(entry.path)
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if cache is not None and cache.copy_out(entry, out):
                cached += entry.size
                if progress:
                    progress(entry.size)
                continue
            downloaded += _download(entry, out, fetch, progress)
            if cache is not None:
                cache.keep(entry, out)
        _swap_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return downloaded, cached


def _download(
    entry: FileEntry,
    out: Path,
    fetch: Callable[[FileEntry], Iterator[bytes]],
    progress: Progress | None,
) -> int:
    h = hashlib.sha256()
    n = 0
    with open(out, "wb") as fh:
        for chunk in fetch(entry):
            h.update(chunk)
            fh.write(chunk)
            n += len(chunk)
            if progress:
                progress(len(chunk))
    if n != entry.size or h.hexdigest() != entry.sha256:
        raise ChecksumMismatch(
            f"{entry.path}: downloaded bytes do not match the catalog (sha256 {entry.sha256[:12]},"
            f" {entry.size} bytes; got {h.hexdigest()[:12]}, {n} bytes); the stored blob is"
            " damaged: nothing was written; run `lorareg fsck` on the server"
        )
    return n


def _swap_into_place(tmp: Path, dest: Path) -> None:
    if not dest.exists():
        os.replace(tmp, dest)
        return
    # Replace an existing folder with two renames; the old one is removed afterwards.
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except OSError:
        os.replace(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)
