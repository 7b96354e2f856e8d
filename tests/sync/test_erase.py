"""An erased adapter leaves serving nodes: the next sync removes its folder and its cached
blobs at once (not kept as stale, not after a grace period), with or without --prune."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from registry.storage.base import blob_key
from tests.sync.conftest import BASE, LOCAL_STORE, following, synced_number, wait_for
from tests.sync.test_once import sync_once


def _weights(c: Any, ref: str) -> str:
    return next(f.sha256 for f in c.show(ref).files if f.path.endswith(".safetensors"))


def test_sync_removes_an_erased_adapter_at_once(
    client: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    c, dest = client, tmp_path / "node"
    c.push(adapter_library["v2"], "acme/voice", base=BASE)
    c.push(adapter_library["v1"], "beta/bot", base=BASE)
    for ref in ("acme/voice:1", "beta/bot:1"):
        c.promote(ref, to="production")
    sync_once(c, dest)
    own = _weights(c, "acme/voice:1")
    cached = dest / ".lorareg" / "blobs" / blob_key(own)
    assert cached.is_file() and synced_number(dest, "acme/voice") == 1

    c.delete("acme/voice", reason="client offboarded", force=True)
    lines = sync_once(c, dest)

    assert any("acme/voice: removed its folder at once" in line for line in lines), lines
    assert not os.path.lexists(dest / "acme" / "voice")
    assert not (dest / ".lorareg" / "versions" / "acme" / "voice").exists()
    assert not cached.exists()
    assert synced_number(dest, "beta/bot") == 1  # another tenant is untouched


@LOCAL_STORE
def test_an_erased_version_is_not_kept_for_the_grace_period(
    client: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    c, dest = client, tmp_path / "node"
    for key in ("v1", "v2"):
        c.push(adapter_library[key], "acme/voice", base=BASE)
    c.promote("acme/voice:2", to="production")
    sync_once(c, dest)
    old = os.path.realpath(dest / "acme" / "voice")
    c.promote("acme/voice:1", to="production", reason="rollback")
    c.delete("acme/voice:2", reason="trained on data we must not keep")
    sync_once(c, dest)
    assert synced_number(dest, "acme/voice") == 1
    assert not os.path.exists(old)  # a plain replacement would stay for grace_s (300 s)


@LOCAL_STORE
def test_following_node_drops_an_offboarded_namespace(
    client: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    c, dest = client, tmp_path / "node"
    c.push(adapter_library["v1"], "acme/voice", base=BASE)
    c.push(adapter_library["v2"], "acme/bot", base=BASE)
    for ref in ("acme/voice:1", "acme/bot:1"):
        c.promote(ref, to="production")
    with following(c, dest, poll_wait_s=0.5):
        wait_for(lambda: synced_number(dest, "acme/bot") == 1, timeout=20, what="first sync")
        c.delete_namespace("acme", reason="contract ended", force=True)
        wait_for(lambda: not os.path.lexists(dest / "acme"), timeout=20, what="the namespace to go")
    assert not (dest / ".lorareg" / "versions" / "acme" / "voice").exists()
