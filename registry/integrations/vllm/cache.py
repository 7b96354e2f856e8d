"""The node cache of the vLLM plugin: one folder per content id, shared by processes.

::

    CACHE/
      0123...cdef/          a version's files exactly as pushed (verified sha256s); the
                            name is its 40-hex content id, so the path changes exactly
                            when the content does (vLLM keys its prefix cache by path)
      .locks/0123...cdef    ``flock``s: shared while a process uses the folder, exclusive
                            while one process downloads it or evicts it
      .locks/0123...cdef.fetch
      .tmp/                 folders being downloaded (renamed into place when whole)

A folder is **in use** while some process holds its shared lock: the plugin holds it
from the moment it hands the path to vLLM until the name moves on and the grace period
ends. Locks die with their process, so a crashed vLLM never pins the cache. Eviction
takes the exclusive lock without waiting; a folder in use is skipped, and the rest go
oldest use first (each use touches the folder) until the cache fits its byte budget.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from registry.errors import ChecksumMismatch
from registry.formats.adapter import check_relative_path

CONTENT_ID = re.compile(r"^[0-9a-f]{40}$")
READ_ONLY = 0o444
USED = ".lorareg-used"  # touched on each use: its mtime orders eviction


@dataclass(frozen=True)
class CacheFile:
    """One file of a version: where it goes, what it must hash to, how to read it."""

    path: str
    sha256: str
    size: int
    chunks: Callable[[], Iterable[bytes]]


class Holding:
    """A shared lock on one content id's folder: the folder is in use until ``release``."""

    def __init__(self, fd: int, folder: Path) -> None:
        self.fd = fd
        self.folder = folder

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops its flock
            self.fd = -1


class NodeCache:
    """Content-addressed adapter folders under ``root`` within ``max_bytes``."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.locks = root / ".locks"
        self.tmp = root / ".tmp"
        self._evicting = threading.Lock()

    def folder(self, content_id: str) -> Path:
        if not CONTENT_ID.match(content_id):
            raise ChecksumMismatch(f"content id {content_id!r} is not 40 hex digits")
        return self.root / content_id

    def hold(self, content_id: str, files: Iterable[CacheFile]) -> tuple[Holding, int]:
        """The folder of ``content_id``, downloaded if missing, held in use.

        Returns the holding and the bytes downloaded now (0 when it was cached). Processes
        and threads asking for the same content id at once download it once: the others
        wait for the first and then find the folder. Raises ChecksumMismatch (nothing kept)
        when a file does not match its sha256.
        """
        folder = self.folder(content_id)
        self.locks.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        use = _lock_fd(self.locks / content_id)
        try:
            fcntl.flock(use, fcntl.LOCK_SH)  # waits only while an eviction removes it
            fetched = 0
            if not folder.is_dir():
                with _locked(self.locks / f"{content_id}.fetch"):
                    if not folder.is_dir():
                        fetched = self._download(folder, files)
            _touch(folder)
        except BaseException:
            os.close(use)
            raise
        return Holding(use, folder), fetched

    def evict(self) -> list[str]:
        """Remove folders no process uses, oldest use first, until the cache fits its
        budget; returns the content ids removed."""
        with self._evicting:
            entries = sorted(self._entries(), key=lambda e: e[1])
            total = sum(size for _, _, size in entries)
            removed: list[str] = []
            for folder, _, size in entries:
                if total <= self.max_bytes:
                    break
                if self._remove_unused(folder):
                    total -= size
                    removed.append(folder.name)
            return removed

    def size(self) -> int:
        return sum(size for _, _, size in self._entries())

    def _download(self, folder: Path, files: Iterable[CacheFile]) -> int:
        tmp = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=self.tmp))
        fetched = 0
        try:
            for f in files:
                dest = tmp / check_relative_path(f.path)
                dest.parent.mkdir(parents=True, exist_ok=True)
                fetched += _write_verified(dest, f)
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return fetched

    def _entries(self) -> Iterator[tuple[Path, float, int]]:
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if not CONTENT_ID.match(folder.name) or not folder.is_dir():
                continue
            try:
                used = (folder / USED).stat().st_mtime
            except FileNotFoundError:
                used = 0.0
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            yield folder, used, size

    def _remove_unused(self, folder: Path) -> bool:
        fd = _lock_fd(self.locks / folder.name)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # some process serves from it
            # Renamed away first: no reader ever sees a half-removed folder.
            trash = self.tmp / f"evicted.{folder.name}.{os.getpid()}.{time.monotonic_ns()}"
            try:
                os.rename(folder, trash)
            except FileNotFoundError:
                return False
            shutil.rmtree(trash, ignore_errors=True)
            return True
        finally:
            os.close(fd)


def _write_verified(dest: Path, f: CacheFile) -> int:
    h = hashlib.sha256()
    n = 0
    with open(dest, "wb") as fh:
        for chunk in f.chunks():
            h.update(chunk)
            fh.write(chunk)
            n += len(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    if n != f.size or h.hexdigest() != f.sha256:
        raise ChecksumMismatch(
            f"{f.path}: received {n} bytes hashing to {h.hexdigest()[:12]}, expected"
            f" {f.size} bytes with sha256 {f.sha256[:12]}; nothing was kept"
        )
    os.chmod(dest, READ_ONLY)
    return n


def _touch(folder: Path) -> None:
    marker = folder / USED
    with contextlib.suppress(OSError):
        marker.touch()
        os.utime(marker)


def _lock_fd(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = _lock_fd(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
