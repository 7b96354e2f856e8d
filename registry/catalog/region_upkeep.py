"""The regional half of an erasure (issue 20): after the catalog rows are gone (the
``blob_replicas`` rows go with their blob rows, by cascade), the bytes go from every
regional store. Like the primary's deletes, these run after the commit, outside any
transaction; a store that fails leaves an unreferenced copy for ``lorareg gc``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select

from registry.db import models as m
from registry.db.database import Database
from registry.errors import LoraregError
from registry.storage.base import BlobStore

_CHUNK = 500


@dataclass
class RegionalDeletion:
    deleted: int = 0  # copies removed (a region that never held one counts nothing)
    pending: dict[str, int] = field(default_factory=dict)  # region -> deletes that failed


def delete_copies(
    db: Database, stores: Mapping[str, BlobStore], shas: Iterable[str]
) -> RegionalDeletion:
    """After an erasure's commit: remove blobs no version references from every regional
    store. A blob registered again since (a push of the same bytes) is kept; a store that
    fails leaves its copy for ``lorareg gc`` (it is unreferenced)."""
    out = RegionalDeletion()
    ordered = sorted(set(shas))
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        with db.read() as s:
            again = set(s.scalars(select(m.Blob.sha256).where(m.Blob.sha256.in_(chunk))))
        gone = [sha for sha in chunk if sha not in again]
        for region, store in sorted(stores.items()):
            for sha in gone:
                try:
                    if not store.exists(sha):
                        continue
                    store.delete(sha)
                except LoraregError:
                    out.pending[region] = out.pending.get(region, 0) + 1
                    continue
                out.deleted += 1
    return out
