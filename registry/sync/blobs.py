"""The node's blob cache: every file it ever fetched, by sha256, verified once.

Version folders hold hard links to these files, so a file shared by two versions (or
brought back by a rollback) is on disk once and never downloaded again. Blobs are made
read-only: a hard link shares its bytes, so a write through any name would change them all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from registry.errors import ChecksumMismatch
from registry.storage.base import blob_key

READ_ONLY = 0o444


class NodeBlobs:
    """Verified files under ``root`` named by sha256, written through ``tmp``."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp

    def path(self, sha256: str) -> Path:
        return self.root / blob_key(sha256)

    def has(self, sha256: str, size: int) -> bool:
        # Verified when written and read-only since: the size check catches truncation.
        try:
            return self.path(sha256).stat().st_size == size
        except FileNotFoundError:
            return False

    def add_stream(self, sha256: str, size: int, chunks: Iterable[bytes]) -> int:
        """Store the bytes ``chunks`` yields if they hash to ``sha256``; returns their count.

        Raises ChecksumMismatch (nothing kept) when they do not.
        """
        h = hashlib.sha256()
        n = 0
        fd, name = tempfile.mkstemp(prefix=".blob.", suffix=".partial", dir=self.tmp)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    h.update(chunk)
                    fh.write(chunk)
                    n += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            if n != size or h.hexdigest() != sha256:
                raise ChecksumMismatch(
                    f"blob {sha256[:12]}: received {n} bytes hashing to {h.hexdigest()[:12]},"
                    f" expected {size}; nothing was written; run `lorareg fsck` on the server"
                )
            self._publish(tmp, sha256)
        finally:
            tmp.unlink(missing_ok=True)
        return n

    def add_bytes(self, data: bytes) -> str:
        """Store ``data`` (an exported config) under its own sha256, which is returned."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.has(sha, len(data)):
            self.add_stream(sha, len(data), [data])
        return sha

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def link_into(self, sha256: str, dest: Path) -> None:
        """Make ``dest`` the blob's bytes: a hard link, or a copy across filesystems."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self.path(sha256), dest)
        except OSError:
            shutil.copyfile(self.path(sha256), dest)
            os.chmod(dest, READ_ONLY)

    def prune(self) -> int:
        """Remove blobs that no version folder links to any more; returns how many."""
        removed = 0
        for p in self.root.rglob("*"):
            try:
                if p.is_file() and p.stat().st_nlink == 1:
                    p.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def _publish(self, tmp: Path, sha256: str) -> None:
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, READ_ONLY)
        os.replace(tmp, target)
