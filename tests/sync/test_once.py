"""One-shot sync through both clients: the folder layout engines load, the exported config,
blob reuse, aliases, prune, status. The first test runs on every backend (SQLite/PostgreSQL
x local/S3); the rest test sync's own logic, on SQLite and the local store."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from registry import errors
from registry.runtime import Runtime
from registry.storage.base import blob_key
from registry.sync import Follower, NodeLayout, SyncOptions, folder_status, source_for
from tests.sync.conftest import BASE, LOCAL_STORE, marker, sha256, synced_number


def sync_once(client: Any, dest: Path, **options: Any) -> list[str]:
    lines: list[str] = []
    options.setdefault("base", BASE)
    Follower(NodeLayout(dest), source_for(client), SyncOptions(**options), log=lines.append).run(
        follow=False
    )
    return lines


@pytest.fixture
def voice(client: Any, adapter_library: dict[str, Path]) -> Any:
    """acme/voice v1, v2 (same config, other weights), v3 (rank 8), all on tiny-llama."""
    for key in ("v1", "v2", "r8"):
        client.push(adapter_library[key], "acme/voice", base=BASE)
    return client


def test_sync_writes_what_engines_load_and_flips_on_promotion(
    voice: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    c, dest = voice, tmp_path / "node"
    c.promote("acme/voice:1", to="production")
    lines = sync_once(c, dest)
    assert any(line.startswith("acme/voice: added v1") for line in lines), lines
    # vLLM's filesystem resolver: DIR/<requested name>/adapter_config.json, LORA, base name.
    link = dest / "acme" / "voice"
    assert link.is_symlink() and (link / "adapter_config.json").is_file()
    real = Path(os.path.realpath(link))
    assert os.path.commonpath([dest.resolve(), real]) == str(dest.resolve())
    cfg = json.loads((link / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["base_model_name_or_path"] == BASE
    weights = (link / "adapter_model.safetensors").read_bytes()
    assert weights == (adapter_library["v1"] / "adapter_model.safetensors").read_bytes()

    c.promote("acme/voice:2", to="production")
    lines = sync_once(c, dest)
    assert any("acme/voice: v1 -> v2" in line for line in lines), lines
    assert synced_number(dest, "acme/voice") == 2
    # Only the weights changed: the config came from the node's cache, not the registry.
    v2_weights = (adapter_library["v2"] / "adapter_model.safetensors").stat().st_size
    assert f"fetched {v2_weights / 1000:.1f} KB" in next(line for line in lines if "->" in line)
    loaded = load_file(str(link / "adapter_model.safetensors"))
    expected = load_file(str(adapter_library["v2"] / "adapter_model.safetensors"))
    assert loaded.keys() == expected.keys()
    assert all(loaded[k].equal(expected[k]) for k in expected)

    # A rollback reuses the v1 folder still kept for readers: no download at all.
    c.promote("acme/voice:1", to="production", reason="rollback")
    lines = sync_once(c, dest)
    assert any("v2 -> v1" in line and "still on disk" in line for line in lines), lines
    assert (link / "adapter_model.safetensors").read_bytes() == weights
    # Unchanged: nothing logged but the summary.
    assert [line for line in sync_once(c, dest) if not line.startswith("synced ")] == []


@LOCAL_STORE
def test_export_sets_served_base_name_and_files_match_marker(
    client: Any, adapter_dir: Path, tmp_path: Path
) -> None:
    cfg_path = adapter_dir / "adapter_config.json"
    doc = json.loads(cfg_path.read_text())
    doc["base_model_name_or_path"] = "/mnt/ckpt/llama"  # what a training script writes
    cfg_path.write_text(json.dumps(doc))
    client.push(adapter_dir, "acme/ckpt", base=BASE)
    client.promote("acme/ckpt:1", to="production")
    dest = tmp_path / "node"
    sync_once(client, dest)
    cfg = json.loads((dest / "acme/ckpt/adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == BASE
    m = marker(dest, "acme/ckpt")
    assert m is not None
    for path, sha in m["files"].items():
        assert sha256((dest / "acme/ckpt" / path).read_bytes()) == sha
    # An engine serving the base under another name gets that name.
    other = tmp_path / "node-served"
    sync_once(client, other, model_name="llama-prod")
    cfg = json.loads((other / "acme/ckpt/adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "llama-prod"


@LOCAL_STORE
def test_alias_other_bases_and_prune(
    voice: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    c = voice
    c.push(adapter_library["v1"], "acme/elsewhere", base="other-base")
    c.promote("acme/elsewhere:1", to="production")
    c.promote("acme/voice:3", to="production")
    c.set_alias("acme/voice", "canary-b", 2)
    dest, canary = tmp_path / "node", tmp_path / "canary"
    sync_once(c, dest)
    sync_once(c, canary, ref="canary-b")
    assert synced_number(dest, "acme/voice") == 3
    assert synced_number(canary, "acme/voice") == 2
    assert not (dest / "acme/elsewhere").exists()  # production, but for another base

    # Demoted: kept (and reported stale) without --prune, removed with it.
    c.promote("acme/voice:3", to="archived")
    lines = sync_once(c, dest)
    assert any("no longer in production" in line for line in lines), lines
    assert synced_number(dest, "acme/voice") == 3
    status = folder_status(dest)
    assert [(a["adapter"], a["state"]) for a in status["adapters"]] == [("acme/voice", "stale")]
    lines = sync_once(c, dest, prune=True, grace_s=0)
    assert any(line.startswith("acme/voice: removed v3") for line in lines), lines
    assert not os.path.lexists(dest / "acme/voice")
    assert folder_status(dest)["adapters"] == []
    # Grace 0: the retired folders and their now unlinked blobs are gone too.
    assert list(NodeLayout(dest).version_folders()) == []
    assert [p for p in (dest / ".lorareg/blobs").rglob("*") if p.is_file()] == []


@LOCAL_STORE
def test_status_reports_versions_cursor_and_lag(voice: Any, tmp_path: Path) -> None:
    voice.promote("acme/voice:2", to="production")
    dest = tmp_path / "node"
    with pytest.raises(errors.NotFound):
        folder_status(dest)
    sync_once(voice, dest)
    st = folder_status(dest)
    assert st["base"] == BASE and st["ref"] == "production" and not st["following"]
    assert st["last_event_id"] == max(e.id for e in voice.events(0))
    assert 0 <= st["lag_s"] < 60
    [entry] = st["adapters"]
    assert (entry["adapter"], entry["version"], entry["state"]) == ("acme/voice", 2, "current")
    # A link changed behind sync's back shows up.
    os.unlink(dest / "acme/voice")
    assert folder_status(dest)["adapters"][0]["state"] == "missing"
    sync_once(voice, dest)
    assert folder_status(dest)["adapters"][0]["state"] == "current"


@LOCAL_STORE
def test_folder_is_bound_to_its_base_and_stage(voice: Any, tmp_path: Path) -> None:
    dest = tmp_path / "node"
    sync_once(voice, dest)
    with pytest.raises(errors.InvalidInput, match="sync into another folder"):
        sync_once(voice, dest, ref="staging")
    with pytest.raises(errors.InvalidInput):
        sync_once(voice, dest, base="other-base")


@LOCAL_STORE
def test_a_folder_in_the_way_is_left_alone(voice: Any, tmp_path: Path) -> None:
    voice.promote("acme/voice:1", to="production")
    dest = tmp_path / "node"
    (dest / "acme/voice").mkdir(parents=True)
    (dest / "acme/voice/mine.txt").write_text("not lorareg's")
    lines = sync_once(voice, dest)
    assert any("acme/voice: not synced:" in line and "not made by" in line for line in lines)
    assert (dest / "acme/voice/mine.txt").read_text() == "not lorareg's"
    shutil.rmtree(dest / "acme/voice")
    sync_once(voice, dest)
    assert synced_number(dest, "acme/voice") == 1


@LOCAL_STORE
def test_folder_reached_through_a_symlink(voice: Any, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    via = tmp_path / "via"
    via.symlink_to(tmp_path / "real")
    voice.promote("acme/voice:1", to="production")
    sync_once(voice, via, grace_s=0, prune=True)
    voice.promote("acme/voice:2", to="production")
    sync_once(voice, via, grace_s=0, prune=True)
    # Housekeeping removed the replaced folder and kept the current one.
    assert synced_number(via, "acme/voice") == 2
    assert [p.name for p in NodeLayout(via).version_folders()] == [
        os.readlink(via / "acme/voice").rsplit("/", 1)[1]
    ]
    assert (via / "acme/voice/adapter_model.safetensors").is_file()


@LOCAL_STORE
def test_a_damaged_blob_fails_its_adapter_only(
    voice: Any, runtime: Runtime, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    damaged = voice.push(adapter_library["r8"], "acme/damaged", base=BASE).version
    voice.promote("acme/damaged:1", to="production")
    voice.promote("acme/voice:1", to="production")
    weights = next(f for f in damaged.files if f.path == "adapter_model.safetensors")
    blob = runtime.store.root / blob_key(weights.sha256)  # type: ignore[attr-defined]
    blob.chmod(0o644)
    blob.write_bytes(b"\0" * weights.size)  # same size, other bytes
    dest = tmp_path / "node"
    lines = sync_once(voice, dest)
    assert any(
        line.startswith("acme/damaged: not synced:") and "run `lorareg fsck`" in line
        for line in lines
    ), lines
    assert lines[-1].endswith("; 1 failed")
    assert synced_number(dest, "acme/voice") == 1
    assert not os.path.lexists(dest / "acme/damaged")
    assert not list((dest / ".lorareg/tmp").iterdir())  # nothing half-written left behind
