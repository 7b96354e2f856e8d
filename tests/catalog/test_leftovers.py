"""What crashed writers leave (issue 21 part 2): temp files of the local store, staged and
unfinished multipart uploads on S3, the server's spool files. fsck reports them (count,
bytes, age); gc removes those past the grace period whose writer no longer runs; a server
sweeps its own spool folder when it starts."""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import httpx
from click.testing import CliRunner

from cli.main import cli
from registry.catalog.upkeep import fsck, gc
from registry.client.local import LocalClient
from registry.config import Settings
from registry.runtime import Runtime
from registry.server import create_app
from registry.storage.local import LocalBlobStore
from registry.storage.s3 import S3BlobStore
from registry.storage.spool import spool_for
from tests.fixtures.catalog import LiveServer


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _leave_store_leftovers(runtime: Runtime, pid: int) -> dict[str, int]:
    """What a killed push leaves in the store; returns the bytes per kind."""
    data = os.urandom(3000)
    sha = hashlib.sha256(data).hexdigest()
    store = runtime.store
    if isinstance(store, LocalBlobStore):
        tmp = store.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / f"{sha[:16]}.{pid}.k1ll3d.part").write_bytes(data)
        return {"temp file": len(data)}
    s3 = cast(S3BlobStore, store)
    key = s3._key(sha)
    upload = s3.client.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"]
    s3.client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload, PartNumber=1, Body=data)
    url = s3.presign_staged_put(secrets.token_hex(16), 1000, expires_s=60)
    assert url is not None and httpx.put(url, content=data[:1000]).status_code == 200
    return {"multipart upload": len(data), "staged upload": 1000}


def test_fsck_reports_and_gc_removes_what_killed_writers_left(
    runtime: Runtime, settings: Settings, adapter_library: dict[str, Path]
) -> None:
    LocalClient(runtime).push(adapter_library["v1"], "acme/a")
    pid = _dead_pid()
    expected = _leave_store_leftovers(runtime, pid)
    spool = spool_for(settings.effective_cache_dir)
    spool.root.mkdir(parents=True)
    (spool.root / f"lorareg-upload-{pid}-k1ll3d").write_bytes(b"s" * 500)
    live = spool.root / f"lorareg-upload-{os.getpid()}-busy"  # a server still receiving
    live.write_bytes(b"l" * 7)
    expected["spool file"] = 507

    report = fsck(runtime.db, runtime.store, spool=spool)
    assert report.ok  # leftovers are not damage
    assert {k: int(v["bytes"]) for k, v in report.leftovers.items()} == expected
    assert all(v["count"] >= 1 and v["oldest_age_s"] >= 0 for v in report.leftovers.values())

    kept = gc(runtime.db, runtime.store, grace=timedelta(hours=1), spool=spool)
    assert kept.leftovers_removed == [] and kept.leftovers_kept == len(expected) + 1
    done = gc(runtime.db, runtime.store, grace=timedelta(0), spool=spool)
    assert done.leftovers_kept == 1  # the live writer's file
    assert done.leftover_bytes_freed == sum(expected.values()) - 7
    after = fsck(runtime.db, runtime.store, deep=True, spool=spool)
    assert after.ok and after.leftovers == {"spool file": after.leftovers["spool file"]}
    assert [p.name for p in spool.root.iterdir()] == [live.name]
    assert after.unreferenced == [] and after.versions == 1


def test_cli_fsck_and_gc_show_leftovers(
    runtime: Runtime, settings: Settings, adapter_library: dict[str, Path]
) -> None:
    LocalClient(runtime).push(adapter_library["v1"], "acme/a")
    kinds = _leave_store_leftovers(runtime, _dead_pid())
    env: dict[str, Any] = {
        "LORAREG_HOME": str(settings.home),
        "LORAREG_DATABASE_URL": settings.effective_database_url,
        "LORAREG_STORAGE_URL": settings.effective_storage_url,
        "LORAREG_S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "LORAREG_CACHE_DIR": str(settings.effective_cache_dir),
        "LORAREG_URL": None,
    }
    runner = CliRunner()
    out = runner.invoke(cli, ["fsck"], env=env, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    for kind in kinds:
        assert f"1 {kind}(s) left by interrupted writers" in out.output
    out = runner.invoke(cli, ["gc", "--grace-hours", "0"], env=env, catch_exceptions=False)
    assert out.exit_code == 0 and f"deleted {len(kinds)} leftover(s)" in out.output
    out = runner.invoke(cli, ["fsck", "--json"], env=env, catch_exceptions=False)
    assert '"leftovers": {}' in out.output


def test_server_sweeps_its_spool_folder_at_start(runtime: Runtime, settings: Settings) -> None:
    spool = spool_for(settings.effective_cache_dir)
    spool.root.mkdir(parents=True)
    dead = spool.root / f"lorareg-upload-{_dead_pid()}-k1ll3d"
    dead.write_bytes(b"x" * 100)
    live = spool.root / f"lorareg-upload-{os.getpid()}-busy"
    live.write_bytes(b"y")
    with LiveServer(create_app(runtime, background=False)) as srv:
        data = b"uploaded through the server"
        sha = hashlib.sha256(data).hexdigest()
        assert httpx.put(f"{srv.url}/api/v1/blobs/{sha}", content=data).status_code == 201
    assert sorted(p.name for p in spool.root.iterdir()) == [live.name]
