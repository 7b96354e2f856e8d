"""Hashing a folder's files and the content id of a manifest."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

from registry.domain import FileEntry

CHUNK = 4 * 1024 * 1024


def sha256_file(path: Path, *, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            if progress:
                progress(len(chunk))
    return h.hexdigest()


def content_id(files: Iterable[FileEntry]) -> str:
    """A 40-hex id of the manifest (paths, sha256s, sizes): equal content, equal id.

    40 hex digits so it can stand where Hugging Face clients expect a commit sha.
    """
    h = hashlib.sha1(usedforsecurity=False)
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.sha256}\0{f.size}\n".encode())
    return h.hexdigest()
