"""Moving adapter bytes between a folder and the registry, shared by both clients.

Push side: scan and validate the folder locally (so bad input is refused before a byte is
uploaded), hash every file. Pull side: stream each file into a temporary folder next to the
destination while hashing it, verify, and rename the folder into place at the end, so a
failed or corrupt pull leaves nothing behind. A local cache keyed by sha256 makes a repeated
pull a local copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from registry.domain import FileEntry, VersionInfo
from registry.errors import AlreadyExists, ChecksumMismatch
from registry.storage.base import blob_key

if TYPE_CHECKING:
    from registry.catalog.hash_index import HashIndex

Progress = Callable[[int], None]
CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class LocalAdapter:
    """A validated adapter folder: its manifest and where each file lives."""

    files: list[FileEntry]
    paths: dict[str, Path]
    base_model: str | None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


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
    """
    from registry.catalog.manifest import sha256_file
    from registry.formats.adapter import inspect_adapter, local_files

    files = local_files(folder)
    contents = inspect_adapter(files, max_header_bytes=max_header_bytes)
    paths = {rel: (folder / rel).resolve() for rel in files}

    def hashed(p: Path) -> tuple[str, int]:
        if index is None:
            return sha256_file(p, progress=progress), p.stat().st_size
        return index.sha256(p, lambda q: sha256_file(q, progress=progress))

    entries = []
    for rel, p in sorted(paths.items()):
        sha256, size = hashed(p)
        entries.append(FileEntry(path=rel, sha256=sha256, size=size))
    if index is not None:
        index.save()
    return LocalAdapter(
        files=entries, paths=paths, base_model=contents.config.base_model_name_or_path
    )


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
