"""``lorareg sync`` on a node in a region reads that region's copies: with the primary's
objects gone after replication, a node in eu still syncs (embedded and remote)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry.client.local import LocalClient
from registry.client.remote import RemoteClient
from registry.runtime import Runtime
from registry.server import create_app
from registry.sync import Follower, NodeLayout, SyncOptions, source_for
from tests.fixtures.catalog import LiveServer
from tests.regions.conftest import s3
from tests.regions.helpers import drain, key, push, worker


def sync_once(client: Any, dest: Path, base: str) -> list[str]:
    lines: list[str] = []
    options = SyncOptions(base=base)
    Follower(NodeLayout(dest), source_for(client), options, log=lines.append).run(follow=False)
    return lines


@pytest.mark.parametrize("where", ["embedded", "remote"])
def test_a_node_in_eu_syncs_from_eu(
    where: str, runtime: Runtime, adapter_dir: Path, buckets: dict[str, str], tmp_path: Path
) -> None:
    version = push(runtime, adapter_dir)
    LocalClient(runtime).promote("acme/voice:1", to="production")
    drain(worker(runtime))
    primary = s3(runtime.settings.s3_endpoint_url)  # type: ignore[arg-type]
    for f in version.files:  # only the eu copies are left to read
        primary.delete_object(Bucket=buckets["primary"], Key=key(f.sha256))
    base = version.base_model or ""
    dest = tmp_path / "node"
    if where == "embedded":
        in_eu = runtime.settings.model_copy(update={"region": "eu"})
        client: Any = LocalClient(Runtime(settings=in_eu, db=runtime.db, store=runtime.store))
        lines = sync_once(client, dest, base)
    else:
        with LiveServer(create_app(runtime, background=False)) as server:
            client = RemoteClient(server.url, region="eu")
            lines = sync_once(client, dest, base)
            client.close()
    # Every byte came from eu: the primary no longer has them.
    assert any("acme/voice: added v1" in line for line in lines), lines
    assert not any("fail" in line.lower() for line in lines), lines
