"""fsck finds what is wrong between catalog and storage; gc removes only old orphans."""

from __future__ import annotations

import hashlib
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from registry.catalog.upkeep import fsck, gc
from registry.catalog.uploads import record_upload
from registry.client.local import LocalClient
from registry.db import models as m
from registry.runtime import Runtime


def _orphan(runtime: Runtime, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        runtime.store.put_file(sha, Path(f.name))
    return sha


def test_fsck_clean_then_damaged(runtime: Runtime, adapter_library: dict[str, Path]) -> None:
    c = LocalClient(runtime)
    v = c.push(adapter_library["v1"], "acme/a").version
    c.push(adapter_library["v2"], "acme/a")
    report = fsck(runtime.db, runtime.store, deep=True)
    assert report.ok and report.versions == 2 and report.files == 6
    orphan = _orphan(runtime, b"left by an interrupted push")
    assert fsck(runtime.db, runtime.store).unreferenced == [orphan]
    card = next(f for f in v.files if f.path == "README.md")  # shared by both versions
    runtime.store.delete(card.sha256)
    report = fsck(runtime.db, runtime.store)
    assert not report.ok and report.missing == [card.sha256]
    assert report.damaged_versions == ["acme/a:1", "acme/a:2"]


def test_gc_removes_only_old_unreferenced_blobs(
    runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    c = LocalClient(runtime)
    c.push(adapter_library["v1"], "acme/a")
    orphan = _orphan(runtime, b"orphan bytes")
    recent = gc(runtime.db, runtime.store, grace=timedelta(hours=1))
    assert recent.deleted == [] and recent.kept_recent == 1 and recent.referenced == 3
    later = datetime.now(UTC) + timedelta(hours=2)
    dry = gc(runtime.db, runtime.store, grace=timedelta(hours=1), now=later, dry_run=True)
    assert dry.deleted == [orphan] and runtime.store.exists(orphan)
    done = gc(runtime.db, runtime.store, grace=timedelta(hours=1), now=later)
    assert done.deleted == [orphan] and not runtime.store.exists(orphan)
    assert fsck(runtime.db, runtime.store, deep=True).ok


def test_push_reusing_an_orphan_restarts_its_grace_period(
    runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    """An interrupted push left a blob; gc is about to collect it as a new push reuses it.
    The reuse is recorded in the catalog (an upload row), never by rewriting the object."""
    weights = adapter_library["v1"] / "adapter_model.safetensors"
    sha = _orphan(runtime, weights.read_bytes())
    [before] = [b for b in runtime.store.list_blobs() if b.sha256 == sha]
    time.sleep(1.1)  # the object's time has one-second resolution on S3
    record_upload(runtime.db, sha256=sha, size=weights.stat().st_size, visible=None)
    with runtime.db.read() as s:
        touched = s.scalar(select(m.Upload.touched_at).where(m.Upload.sha256 == sha))
    assert touched is not None and touched - before.modified > timedelta(seconds=1)
    grace = timedelta(seconds=1)
    # Past the object's grace period, within the upload row's: kept.
    soon = touched + timedelta(milliseconds=500)
    assert gc(runtime.db, runtime.store, grace=grace, now=soon).deleted == []
    [after] = [b for b in runtime.store.list_blobs() if b.sha256 == sha]
    assert after.modified == before.modified  # the object itself was not rewritten
    later = touched + timedelta(seconds=2)
    done = gc(runtime.db, runtime.store, grace=grace, now=later)
    assert done.deleted == [sha] and done.uploads_expired == 1
