"""The unchanged re-push answered without opening the client (``client.repush``): the same
version and message as the full push, and a fall-back to the full push in every case it
cannot be sure of (a touched or changed file, a deleted blob, another schema version,
PostgreSQL, another base or repo)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import cli
from registry.catalog.hash_index import HashIndex
from registry.client import repush
from registry.client.local import LocalClient
from registry.config import Settings
from registry.runtime import Runtime

WEIGHTS = "adapter_model.safetensors"


def _remember(folder: Path, settings: Settings) -> None:
    """Put the folder's files in the hash index as a push long after they were written
    would (the index skips files written within the last two seconds)."""
    index = HashIndex(HashIndex.in_cache(settings.effective_cache_dir).path, racy_s=0)
    for p in sorted(folder.iterdir()):
        index.sha256(p.resolve(), lambda q: hashlib.sha256(q.read_bytes()).hexdigest())
    index.save()


def _unchanged(settings: Settings, folder: Path, repo: str, **kw: Any) -> repush.Unchanged | None:
    opts: dict[str, Any] = {"base": None, "description": None, "tags": {}, "evals": []}
    return repush.unchanged_push(settings, folder, repo, **{**opts, **kw})


def test_the_shortcut_answers_what_the_full_push_answers(
    runtime: Runtime, settings: Settings, adapter_dir: Path, db_backend: str
) -> None:
    client = LocalClient(runtime)
    first = client.push(adapter_dir, "acme/same")
    _remember(adapter_dir, settings)
    fast = _unchanged(settings, adapter_dir, "acme/same")
    full = client.push(adapter_dir, "acme/same")
    assert not full.created and full.version == first.version
    if db_backend != "sqlite":
        assert fast is None  # PostgreSQL: the full path answers
        return
    assert fast == repush.Unchanged(
        ref=full.version.ref, content_id=full.version.content_id, files=len(full.version.files)
    )
    # Another base or another repo is another version: no answer here.
    assert _unchanged(settings, adapter_dir, "acme/same", base="other-base") is None
    assert _unchanged(settings, adapter_dir, "acme/elsewhere") is None
    # Metadata the full push refuses: the full push says so.
    assert _unchanged(settings, adapter_dir, "acme/same", tags={"bad key": "x"}) is None
    # A remote client never takes it.
    remote = settings.model_copy(update={"url": "http://127.0.0.1:1"})
    assert _unchanged(remote, adapter_dir, "acme/same") is None


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_a_touched_or_changed_file_falls_back(
    runtime: Runtime, settings: Settings, adapter_dir: Path, adapter_library: dict[str, Path]
) -> None:
    client = LocalClient(runtime)
    first = client.push(adapter_dir, "acme/touchy")
    _remember(adapter_dir, settings)
    assert _unchanged(settings, adapter_dir, "acme/touchy") is not None
    weights = adapter_dir / WEIGHTS
    # Touched, bytes unchanged: hashed again by the full path, which finds the same version.
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert _unchanged(settings, adapter_dir, "acme/touchy") is None
    again = client.push(adapter_dir, "acme/touchy")
    assert not again.created and again.version == first.version
    # Changed to other bytes of the same size, the mtime put back: the ctime moved.
    _remember(adapter_dir, settings)
    st = weights.stat()
    other = (adapter_library["v2"] / WEIGHTS).read_bytes()
    assert len(other) == st.st_size
    weights.write_bytes(other)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _unchanged(settings, adapter_dir, "acme/touchy") is None
    second = client.push(adapter_dir, "acme/touchy")
    assert second.created and second.version.number == 2


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_a_deleted_blob_falls_back_and_is_stored_again(
    runtime: Runtime, settings: Settings, adapter_dir: Path
) -> None:
    client = LocalClient(runtime)
    first = client.push(adapter_dir, "acme/lost")
    _remember(adapter_dir, settings)
    weights = next(f for f in first.version.files if f.path == WEIGHTS)
    runtime.store.delete(weights.sha256)  # as fsck --repair does with a damaged blob
    assert _unchanged(settings, adapter_dir, "acme/lost") is None
    restored = client.push(adapter_dir, "acme/lost")
    assert not restored.created and restored.blobs_uploaded == 1
    assert runtime.store.exists(weights.sha256)
    assert _unchanged(settings, adapter_dir, "acme/lost") is not None


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_a_catalog_at_another_schema_version_falls_back(
    runtime: Runtime, settings: Settings, adapter_dir: Path
) -> None:
    LocalClient(runtime).push(adapter_dir, "acme/schema")
    _remember(adapter_dir, settings)
    assert _unchanged(settings, adapter_dir, "acme/schema") is not None
    path = settings.effective_database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        (head,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        conn.execute("UPDATE alembic_version SET version_num = 'from_the_future'")
    assert _unchanged(settings, adapter_dir, "acme/schema") is None
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (head,))
    assert _unchanged(settings, adapter_dir, "acme/schema") is not None


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_the_cli_prints_the_same_line_either_way(
    settings: Settings,
    runtime: Runtime,
    adapter_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "LORAREG_HOME": str(settings.home),
        "LORAREG_DATABASE_URL": settings.effective_database_url,
        "LORAREG_STORAGE_URL": settings.effective_storage_url,
        "LORAREG_CACHE_DIR": str(settings.effective_cache_dir),
        "LORAREG_AUTHOR": "cli-user",
        "LORAREG_URL": None,
    }
    if settings.s3_endpoint_url:
        env["LORAREG_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
        env["LORAREG_PART_SIZE"] = str(settings.part_size)
    runner = CliRunner()

    def push(*extra: str) -> Any:
        return runner.invoke(
            cli, ["push", str(adapter_dir), "acme/cli", *extra], env=env, catch_exceptions=False
        )

    assert push().exit_code == 0
    shutil.rmtree(settings.effective_cache_dir, ignore_errors=True)
    _remember(adapter_dir, settings)
    real_unchanged = repush.unchanged_push
    monkeypatch.setattr(repush, "unchanged_push", lambda *a, **k: None)
    full = push()
    monkeypatch.setattr(repush, "unchanged_push", real_unchanged)

    def no_client(*_a: object, **_k: object) -> None:
        raise AssertionError("the client was opened")

    monkeypatch.setattr("registry.client.connect", no_client)
    fast = push()
    assert (fast.exit_code, fast.output) == (full.exit_code, full.output) == (0, full.output)
    assert full.output.startswith("unchanged: identical to acme/cli:1 (content ")
    # A bad tag is refused with the full path's own error, shortcut or not.
    monkeypatch.undo()
    refused = push("--tag", "bad key=x")
    assert refused.exit_code == 1 and "invalid tag key" in refused.output
    # --json and --strict take the full path (the client is opened).
    monkeypatch.setattr("registry.client.connect", no_client)
    for flag in ("--json", "--strict"):
        with pytest.raises(AssertionError, match="the client was opened"):
            push(flag)
