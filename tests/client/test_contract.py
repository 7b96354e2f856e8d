"""One contract for both clients: every operation of ``RegistryClient`` runs on the local
(in-process) client and on the remote (HTTP) client against the same catalog, and the
results must agree. Reads run on the same adapter; writes run on twin adapters made the
same way (``acme/a`` locally, ``acme/b`` remotely) and are compared with the names swapped
and the fields that differ by nature (ids, times, secrets, local paths, URLs) masked."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from registry.client.base import RegistryClient
from registry.client.local import LocalClient
from registry.client.remote import RemoteClient
from registry.domain import EvalRecord
from registry.runtime import Runtime
from tests.fixtures.catalog import LiveServer

pytestmark = pytest.mark.parametrize("storage_backend", ["local"])

# Fields whose values differ between two runs of the same operation by nature.
VOLATILE = {
    "id",
    "created_at",
    "updated_at",
    "expires_at",
    "revoked_at",
    "token",
    "prefix",
    "secret",
    "url",
    "download_url",
    "job_id",
    "recorded_at",
    "checked_at",
}

Op = Callable[[RegistryClient, str], Any]


def plain(value: Any) -> Any:
    """The result as JSON would carry it, volatile fields masked."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        value = json.loads(json.dumps(asdict(value), default=str))
    if isinstance(value, dict):
        return {k: "*" if k in VOLATILE and v is not None else plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def twin(value: Any) -> str:
    """``acme/b``'s result read as ``acme/a``'s."""
    text = json.dumps(plain(value), sort_keys=True)
    return text.replace('"acme/b', '"acme/a').replace('"name": "b"', '"name": "a"')


# Reads: the same call on both clients, against the same adapters.
READS: dict[str, Op] = {
    "show": lambda c, r: c.show(f"{r}:1"),
    "show latest": lambda c, r: c.show(r),
    "versions": lambda c, r: c.versions(r),
    "list_adapters": lambda c, r: c.list_adapters(),
    "list_adapters of a namespace": lambda c, r: c.list_adapters("acme"),
    "history": lambda c, r: c.history(r),
    "diff of one adapter": lambda c, r: c.diff(f"{r}:1", f"{r}:2"),
    "diff of two adapters": lambda c, r: c.diff(f"{r}:1", "acme/other:1"),
    "namespace policy": lambda c, r: c.get_policy("acme"),
    "adapter policy": lambda c, r: c.get_policy(r),
    "namespace_history": lambda c, r: c.namespace_history("acme"),
    "events": lambda c, r: c.events(0),
    "events with a wait, none new": lambda c, r: c.events(10**6, wait=0.3),
    "list_bases": lambda c, r: c.list_bases(),
    "get_base": lambda c, r: c.get_base("tiny-llama"),
    "checks": lambda c, r: c.checks(f"{r}:1"),
    "jobs": lambda c, r: c.jobs(),
    "namespace_info": lambda c, r: c.namespace_info("acme"),
    "list_tokens": lambda c, r: c.list_tokens(),
    "list_webhooks": lambda c, r: c.list_webhooks(),
    "regions": lambda c, r: c.regions(),
    "region_status": lambda c, r: c.region_status(ref=f"{r}:1"),
}

# Writes: local on acme/a, remote on acme/b (both made identically), in this order.
WRITES: dict[str, Op] = {
    "check": lambda c, r: c.check(f"{r}:2", base="tiny-llama"),
    "add_evals": lambda c, r: c.add_evals(f"{r}:2", [EvalRecord(metric="acc", value=0.9)]),
    "tag": lambda c, r: c.tag(f"{r}:2", {"team": "x"}),
    "set_policy": lambda c, r: c.set_policy(r, {"min_evals": {"acc": 0.5}}),
    "promote": lambda c, r: c.promote(f"{r}:2", to="production", reason="contract"),
    "promote again": lambda c, r: c.promote(f"{r}:2", to="production"),
    "set_alias": lambda c, r: c.set_alias(r, "champion", 1, reason="contract"),
    "delete_alias": lambda c, r: c.delete_alias(r, "champion"),
}


@pytest.fixture
def clients(
    runtime: Runtime,
    adapter_library: dict[str, Path],
    base_library: dict[str, Path],
    tmp_path: Path,
) -> Iterator[tuple[LocalClient, RemoteClient]]:
    local = LocalClient(runtime)
    local.add_base("tiny-llama", str(base_library["tiny"]))
    for repo in ("acme/a", "acme/b", "acme/other"):
        local.push(adapter_library["v1"], repo, base="tiny-llama")
        if repo != "acme/other":
            local.push(adapter_library["v2"], repo, base="tiny-llama")
    with LiveServer(__import__("registry.server").server.create_app(runtime)) as srv:
        remote = RemoteClient(srv.url, actor="tester", cache_dir=tmp_path / "remote-cache")
        yield local, remote
        remote.close()


def test_both_clients_answer_alike(
    clients: tuple[LocalClient, RemoteClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, remote = clients
    # Pages of one adapter: the local client must page through all, as the remote does.
    monkeypatch.setattr("registry.client.local.PAGE", 1)
    differ = []
    for what, op in READS.items():
        mine, theirs = plain(op(local, "acme/a")), plain(op(remote, "acme/a"))
        if mine != theirs:
            differ.append(f"{what}:\n  local  {mine}\n  remote {theirs}")
    for what, op in WRITES.items():
        mine, theirs = twin(op(local, "acme/a")), twin(op(remote, "acme/b"))
        if mine != theirs:
            differ.append(f"{what}:\n  local  {mine}\n  remote {theirs}")
    assert differ == [], "\n".join(differ)
    pulled = [c.pull("acme/a:1", dest=tmp_path / kind) for kind, c in (("l", local), ("r", remote))]
    same = [plain(p.model_copy(update={"path": ""})) for p in pulled]
    assert same[0] == same[1]
    assert sorted(p.name for p in (tmp_path / "l").iterdir()) == sorted(
        p.name for p in (tmp_path / "r").iterdir()
    )
    assert len(local.list_adapters()) == 3
