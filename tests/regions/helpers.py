"""Small helpers shared by the regions tests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from registry.client.local import LocalClient
from registry.db import models as m
from registry.domain import VersionInfo
from registry.regions import open_regions
from registry.regions.stores import RegionSet
from registry.regions.worker import ReplicationWorker
from registry.runtime import Runtime


def push(rt: Runtime, folder: Path, repo: str = "acme/voice") -> VersionInfo:
    return LocalClient(rt).push(folder, repo).version


def regions_of(rt: Runtime) -> RegionSet:
    return open_regions(rt.settings, rt.store)


def worker(rt: Runtime, **kw: Any) -> ReplicationWorker:
    options: dict[str, Any] = {"retry_base_s": 0.01, "retry_cap_s": 0.05, "check_base_s": 0.01}
    options.update(kw)
    return ReplicationWorker(regions_of(rt), rt.db, **options)


def drain(w: ReplicationWorker, rounds: int = 50) -> None:
    """Run rounds until one handles nothing."""
    for _ in range(rounds):
        if w.run_once() == 0:
            return
    raise AssertionError("replication did not settle")


def copies(rt: Runtime, region: str) -> dict[str, str]:
    """sha256 -> state of every copy the catalog records for ``region``."""
    with rt.db.read() as s:
        rows = s.execute(
            select(m.BlobReplica.sha256, m.BlobReplica.state).where(m.BlobReplica.region == region)
        ).all()
    return dict(rows)  # type: ignore[arg-type]


def make_due(rt: Runtime) -> None:
    """Every copy not present is due now (skips the backoff wait, not the logic)."""
    with rt.db.write() as s:
        s.execute(
            update(m.BlobReplica)
            .where(m.BlobReplica.state != "present")
            .values(next_try_at=m.utcnow())
        )


def object_sha(client: Any, bucket: str, sha: str) -> str:
    body = client.get_object(Bucket=bucket, Key=f"blobs/sha256/{sha[:2]}/{sha[2:]}")["Body"]
    return hashlib.sha256(body.read()).hexdigest()


def key(sha: str) -> str:
    return f"blobs/sha256/{sha[:2]}/{sha[2:]}"
