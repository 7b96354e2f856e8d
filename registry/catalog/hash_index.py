"""What a file hashed to, remembered by how it looked, so an unchanged re-push reads nothing.

Like git's index: an entry keeps a file's sha256 with its (size, mtime_ns, ctime_ns, inode,
device), and is trusted only while every one of them still matches. Writing a file moves
its mtime and ctime; ``touch -d``/``os.utime`` can put the mtime back but moves the ctime,
which no user can set; replacing it changes the inode. Anything that does not match is
hashed again. A file changed within the same clock tick as its hashing would keep all five
("racily clean", in git's words), so files modified less than ``RACY_S`` before they were
hashed are not remembered.

The index is one JSON file in the user's cache folder (``<cache>/hash-index.json``, mode
0600, replaced atomically), keyed by absolute path. It is only ever a hint: the upload
hashes the bytes it sends again and stores nothing on a mismatch, and a damaged index is
ignored.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

NAME = "hash-index.json"
RACY_S = 2.0
MAX_ENTRIES = 20_000
_FORMAT = 1


def _signature(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class HashIndex:
    """sha256s of local files, by absolute path and stat signature."""

    def __init__(self, path: Path, *, racy_s: float | None = None) -> None:
        self.path = path
        self.racy_s = RACY_S if racy_s is None else racy_s
        self._entries: dict[str, list[object]] = self._load()
        self._dirty = False

    @classmethod
    def in_cache(cls, cache_dir: Path) -> HashIndex:
        return cls(Path(cache_dir) / NAME)

    def _load(self) -> dict[str, list[object]]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # absent or damaged: start afresh (it is only a hint)
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            return {}
        entries = doc.get("entries")
        return entries if isinstance(entries, dict) else {}

    def sha256(self, path: Path, hash_file: Callable[[Path], str]) -> tuple[str, int]:
        """(sha256, size) of ``path``: remembered when its signature matches, else hashed
        with ``hash_file`` (and remembered unless the file is racily new)."""
        key = str(path.resolve())
        before = os.stat(key)
        known = self._remembered(key, before)
        if known is not None:
            return known, before.st_size
        started = time.time_ns()
        digest = hash_file(path)
        after = os.stat(key)
        newest = max(after.st_mtime_ns, after.st_ctime_ns)
        if _signature(after) == _signature(before) and started - newest > self.racy_s * 1e9:
            self._entries.pop(key, None)  # re-inserted last: the newest survive pruning
            self._entries[key] = [_signature(after), digest]
            self._dirty = True
        return digest, before.st_size

    def known(self, path: Path) -> tuple[str, int] | None:
        """(sha256, size) of ``path`` when its signature still matches the remembered one;
        None otherwise (nothing is read or hashed)."""
        key = str(path.resolve())
        st = os.stat(key)
        digest = self._remembered(key, st)
        return None if digest is None else (digest, st.st_size)

    def _remembered(self, key: str, st: os.stat_result) -> str | None:
        entry = self._entries.get(key)
        if (
            isinstance(entry, list)
            and len(entry) == 2
            and entry[0] == _signature(st)
            and isinstance(entry[1], str)
        ):
            return entry[1]
        return None

    def save(self) -> None:
        """Write the index if it changed; failures are ignored (it is only a hint)."""
        if not self._dirty:
            return
        while len(self._entries) > MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]
        doc = json.dumps({"format": _FORMAT, "entries": self._entries}, separators=(",", ":"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{NAME}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp: mode 0600
                    fh.write(doc)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            return
        self._dirty = False
