"""Sync with a reader token: a token scoped to one namespace syncs nothing else, and a bad
token stops sync with an error instead of retrying forever."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.access import create_token
from registry.client.remote import RemoteClient
from registry.errors import Unauthorized
from registry.runtime import Runtime
from registry.sync import Follower, NodeLayout, SyncOptions, folder_status, source_for
from tests.sync.conftest import (
    BASE,
    LOCAL_STORE,
    RestartableServer,
    following,
    synced_number,
    wait_for,
)

pytestmark = LOCAL_STORE


@pytest.fixture
def secured(runtime: Runtime) -> Iterator[RestartableServer]:
    srv = RestartableServer(runtime, require_auth=True).start()
    yield srv
    srv.stop()


def token(runtime: Runtime, role: str, namespaces: list[str] | None = None) -> str:
    secret, _ = create_token(
        runtime.db, name=f"{role}-{namespaces}", role=role, actor="test", namespaces=namespaces
    )
    return secret


def test_a_namespace_token_syncs_nothing_else(
    secured: RestartableServer,
    runtime: Runtime,
    adapter_library: dict[str, Path],
    tmp_path: Path,
) -> None:
    admin = RemoteClient(secured.url, token=token(runtime, "admin"))
    node = RemoteClient(secured.url, token=token(runtime, "reader", ["acme"]))
    try:
        for repo in ("acme/voice", "other/secret"):
            for key in ("v1", "v2"):
                admin.push(adapter_library[key], repo, base=BASE)
            admin.promote(f"{repo}:1", to="production")
        dest = tmp_path / "node"
        with following(node, dest) as run:
            assert synced_number(dest, "acme/voice") == 1
            admin.promote("other/secret:2", to="production")
            admin.promote("acme/voice:2", to="production")
            wait_for(lambda: synced_number(dest, "acme/voice") == 2, timeout=1.0, what="v2")
            time.sleep(0.3)
        assert not (dest / "other").exists()
        assert not any("other/" in line for line in run.lines), run.lines
        assert [a["adapter"] for a in folder_status(dest)["adapters"]] == ["acme/voice"]

        # Asking for the other namespace by name gives nothing either.
        lines: list[str] = []
        elsewhere = tmp_path / "elsewhere"
        options = SyncOptions(base=BASE, namespace="other")
        Follower(NodeLayout(elsewhere), source_for(node), options, log=lines.append).run(
            follow=False
        )
        assert folder_status(elsewhere)["adapters"] == []
        assert not (elsewhere / "other").exists()
    finally:
        admin.close()
        node.close()


def test_a_bad_token_stops_sync(secured: RestartableServer, tmp_path: Path) -> None:
    bad = RemoteClient(secured.url, token="lrg_not-a-token")
    try:
        with pytest.raises(Unauthorized), following(bad, tmp_path / "node"):
            pass
    finally:
        bad.close()


def test_another_token_re_resolves_everything(
    secured: RestartableServer,
    runtime: Runtime,
    adapter_library: dict[str, Path],
    tmp_path: Path,
) -> None:
    """A pass with a token that may see more than the last one's cannot trust the events
    the last one saw: it re-resolves every adapter."""
    admin = RemoteClient(secured.url, token=token(runtime, "admin"))
    narrow = RemoteClient(secured.url, token=token(runtime, "reader", ["acme"]))
    wide = RemoteClient(secured.url, token=token(runtime, "reader"))
    dest = tmp_path / "node"
    try:
        for repo in ("acme/voice", "other/bot"):
            admin.push(adapter_library["v1"], repo, base=BASE)
            admin.promote(f"{repo}:1", to="production")
        for node, why in ((narrow, "no event cursor yet"), (wide, "options changed")):
            lines: list[str] = []
            Follower(
                NodeLayout(dest), source_for(node), SyncOptions(base=BASE), log=lines.append
            ).run(follow=False)
            assert why in lines[-1], lines
        assert synced_number(dest, "other/bot") == 1
    finally:
        for c in (admin, narrow, wide):
            c.close()
