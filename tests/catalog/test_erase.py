"""Offboarding: erasing a version, an adapter or a namespace removes its rows and the
weights nobody else uses, keeps who/when/why in the audit log without content, and leaves
nothing behind for fsck; through both clients, on every database and store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from registry.access import create_token
from registry.catalog import erase as erase_mod
from registry.catalog.upkeep import fsck, gc
from registry.client.local import LocalClient
from registry.db import models as m
from registry.domain import EvalRecord
from registry.errors import (
    AdapterNotFound,
    InProduction,
    InvalidInput,
    NotFound,
    StorageUnavailable,
    VersionNotFound,
)
from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state

BASE = "tiny-llama"


def _weights(c: Any, ref: str) -> str:
    return next(f.sha256 for f in c.show(ref).files if f.path.endswith(".safetensors"))


def _events_text(rt: Runtime, namespace: str) -> str:
    with rt.db.read() as s:
        rows = s.scalars(select(m.Event).where(m.Event.namespace == namespace))
        return json.dumps([r.payload for r in rows])


@pytest.fixture
def two_tenants(runtime: Runtime, adapter_library: dict[str, Path]) -> LocalClient:
    """acme/a v1 and v2 (v2 has its own weights), beta/b v1 with the very bytes of acme/a:1."""
    c = LocalClient(runtime)
    c.push(adapter_library["v1"], "acme/a", base=BASE, tags={"client": "hans"})
    c.push(
        adapter_library["v2"],
        "acme/a",
        base=BASE,
        evals=[EvalRecord(metric="acc", value=0.8, dataset="client-purchases")],
    )
    c.set_alias("acme/a", "champion", 2)
    c.push(adapter_library["v1"], "beta/b", base=BASE)
    return c


def test_delete_adapter_erases_it_and_only_its_own_weights(
    client: Any, runtime: Runtime, two_tenants: LocalClient, tmp_path: Path
) -> None:
    only_acme = _weights(two_tenants, "acme/a:2")
    shared = _weights(two_tenants, "acme/a:1")  # beta/b:1 holds the same bytes
    content_ids = [v.content_id for v in two_tenants.versions("acme/a")]

    report = client.delete("acme/a", reason="client asked to be forgotten")

    assert report.versions == ["acme/a:1", "acme/a:2"] and report.adapters == ["acme/a"]
    assert report.blobs_deleted == 1 and report.bytes_freed > 0 and report.storage_pending == 0
    assert not runtime.store.exists(only_acme)
    assert runtime.store.exists(shared)
    assert two_tenants.pull("beta/b:1", dest=tmp_path / "b").version.number == 1
    with pytest.raises(AdapterNotFound):
        client.show("acme/a:1")
    with pytest.raises(AdapterNotFound):
        client.resolve("acme/a", ref="champion")
    with runtime.db.read() as s:
        for model in (m.VersionFile, m.Tag, m.EvalScore, m.Alias, m.CheckResult):
            assert s.scalar(select(text("count(*)")).select_from(model)) == (
                3 if model is m.VersionFile else 0
            ), model.__name__
        assert s.scalar(select(m.Adapter).where(m.Adapter.name == "a")) is None
    checked = fsck(runtime.db, runtime.store, deep=True)
    assert checked.ok and checked.unreferenced == [] and checked.versions == 1
    # The audit log: who, when, why and what kind; no content ids, file names or evals.
    history = [e for e in two_tenants.namespace_history("acme") if e.adapter == "a"]
    erased = history[-1]
    assert erased.kind == "adapter.deleted" and erased.actor == "tester"
    assert erased.payload["reason"] == "client asked to be forgotten"
    assert {e.kind for e in history[:-1]} >= {"version.created", "alias.moved"}
    assert all(e.payload == {"erased": True} for e in history[:-1])
    logged = _events_text(runtime, "acme")
    for secret in (*content_ids, only_acme, shared, "adapter_model", "client-purchases"):
        assert secret not in logged


def test_delete_one_version_keeps_the_rest_and_never_reuses_its_number(
    client: Any, runtime: Runtime, two_tenants: LocalClient, adapter_library: dict[str, Path]
) -> None:
    weights = _weights(two_tenants, "acme/a:2")
    report = client.delete("acme/a:2", reason="trained on data we must not keep")
    assert report.versions == ["acme/a:2"] and report.adapters == []
    assert report.blobs_deleted == 1 and not runtime.store.exists(weights)
    assert [v.number for v in client.versions("acme/a")] == [1]
    with pytest.raises(VersionNotFound):
        client.resolve("acme/a", ref="champion")  # the alias went with the version
    again = two_tenants.push(adapter_library["r8"], "acme/a", base=BASE).version
    assert again.number == 3  # acme/a:2 never names other bytes later
    assert fsck(runtime.db, runtime.store).unreferenced == []
    # Deleting the first version leaves the next one without a parent, not dangling.
    client.delete("acme/a:1", reason="same client")
    assert client.show("acme/a:3").parent is None
    with pytest.raises(VersionNotFound):
        client.delete("acme/a:9", reason="nothing there")


def test_refusals_change_nothing(client: Any, runtime: Runtime, two_tenants: LocalClient) -> None:
    two_tenants.promote("acme/a:2", to="production", reason="live")
    before = catalog_state(runtime)
    with pytest.raises(InProduction) as refused:
        client.delete("acme/a", reason="offboarding")
    assert "acme/a:2" in refused.value.message and "--force" in refused.value.message
    with pytest.raises(InvalidInput):
        client.delete("acme/a:1", reason="   ")
    with pytest.raises(InvalidInput):
        client.delete("acme/a@production", reason="labels move; numbers do not")
    with pytest.raises(AdapterNotFound):
        client.delete("acme/zzz", reason="typo")
    with pytest.raises(NotFound):
        client.delete_namespace("nobody", reason="typo")
    assert catalog_state(runtime) == before
    forced = client.delete("acme/a", reason="offboarding", force=True)
    assert forced.versions == ["acme/a:1", "acme/a:2"]


def test_namespace_delete_offboards_the_client(
    runtime: Runtime, two_tenants: LocalClient, adapter_library: dict[str, Path]
) -> None:
    c = two_tenants
    c.push(adapter_library["r8"], "acme/other", base=BASE)
    db = runtime.db
    create_token(db, name="acme-ci", role="writer", actor="t", namespaces=["acme"])
    create_token(db, name="both", role="reader", actor="t", namespaces=["acme", "beta"])
    create_token(db, name="ops", role="admin", actor="t")
    c.set_policy("acme", {"min_evals": {"acc": 0.5}})
    c.set_policy("acme/a", {"require_reason": True})
    c.set_policy("beta", {"require_reason": True})
    c.set_quota("acme", max_versions=100)
    with db.write() as s:
        s.add(
            m.Webhook(url="http://127.0.0.1:9/a", secret="s" * 32, namespace="acme", created_by="t")
        )
        s.add(m.Webhook(url="http://127.0.0.1:9/all", secret="s" * 32, created_by="t"))
        # A queued merge that would bring acme's weights back, and a merged model in beta
        # that was built from acme/a:2 (as a finished job leaves it).
        spec = {"inputs": [{"repo": "acme/a", "number": 2, "ref": "acme/a:2", "weight": 1.0}],
                "output": "beta/merged", "base": BASE, "method": "linear"}  # fmt: skip
        job = m.Job(spec=spec, created_by="t", namespace="beta")
        s.add(job)
        s.flush()
        s.add_all(m.JobNamespace(job_id=job.id, namespace=n) for n in ("acme", "beta"))
    merged = c.push(adapter_library["v2"], "beta/merged", base=BASE).version
    with db.write() as s:
        out_id = s.scalar(
            select(m.AdapterVersion.id).join(m.Adapter).where(m.Adapter.name == "merged")
        )
        in_id = s.scalar(
            select(m.AdapterVersion.id)
            .join(m.Adapter)
            .where(m.Adapter.name == "a", m.AdapterVersion.number == 2)
        )
        s.add(m.MergeInput(output_id=out_id, input_id=in_id, weight=1.0, position=0))

    report = c.delete_namespace("acme", reason="contract ended, ticket 4711")

    assert report.adapters == ["acme/a", "acme/other"] and len(report.versions) == 3
    assert (report.tokens_removed, report.tokens_narrowed) == (1, 1)
    assert (report.webhooks_removed, report.policies_removed, report.jobs_removed) == (1, 2, 1)
    assert report.derived_kept == [merged.ref]
    # Only acme/other's config and weights go: beta/b:1 holds acme/a:1's bytes and
    # beta/merged:1 acme/a:2's.
    assert report.blobs_deleted == 2
    tokens = {t["name"]: t["namespaces"] for t in c.list_tokens()}
    assert tokens == {"both": ["beta"], "ops": None}
    assert [w["namespace"] for w in c.list_webhooks()] == [None]
    assert c.get_policy("acme")["rules"] is None and c.get_policy("beta")["rules"] is not None
    assert [a.namespace for a in c.list_adapters()] == ["beta", "beta"]
    with pytest.raises(NotFound):
        c.namespace_info("acme")  # its quota went too
    with db.read() as s:
        assert s.scalar(select(text("count(*)")).select_from(m.MergeInput)) == 0
        assert s.scalar(select(text("count(*)")).select_from(m.Job)) == 0
    kinds = [e.kind for e in c.namespace_history("acme")]
    assert kinds[-3:] == ["adapter.deleted", "adapter.deleted", "namespace.deleted"]
    assert fsck(db, runtime.store, deep=True).unreferenced == []
    assert c.pull("beta/merged:1", dest=runtime.settings.home / "m").version.number == 1


def test_a_crash_after_the_commit_leaves_only_what_gc_removes(
    runtime: Runtime, two_tenants: LocalClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = _weights(two_tenants, "acme/a:2")

    def killed(*_a: object, **_k: object) -> None:
        raise SystemExit("killed between the commit and the storage deletes")

    monkeypatch.setattr(erase_mod, "_delete_blobs", killed)
    with pytest.raises(SystemExit):
        two_tenants.delete("acme/a", reason="offboarding")
    monkeypatch.undo()
    assert two_tenants.list_adapters("acme") == []  # committed
    report = fsck(runtime.db, runtime.store)
    assert report.ok and report.unreferenced == [weights]
    later = datetime.now(UTC) + timedelta(days=2)
    assert gc(runtime.db, runtime.store, now=later).deleted == [weights]
    assert fsck(runtime.db, runtime.store).unreferenced == []


def test_storage_down_after_the_commit_is_reported_not_fatal(
    runtime: Runtime, two_tenants: LocalClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(_sha: str) -> None:
        raise StorageUnavailable("storage is down")

    monkeypatch.setattr(runtime.store, "delete", down)
    report = two_tenants.delete("acme/a:2", reason="offboarding")
    assert report.storage_pending == 1 and report.blobs_deleted == 0
    monkeypatch.undo()
    assert len(fsck(runtime.db, runtime.store).unreferenced) == 1


def test_a_push_of_the_same_bytes_during_the_erasure_keeps_them(
    runtime: Runtime,
    two_tenants: LocalClient,
    adapter_library: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Another tenant pushes acme/a:2's bytes between the erasure's commit and its storage
    deletes: the blob is registered again, so it must stay."""
    weights = _weights(two_tenants, "acme/a:2")
    original = erase_mod._delete_blobs

    def racing(*args: Any) -> Any:
        two_tenants.push(adapter_library["v2"], "gamma/g", base=BASE)
        return original(*args)

    monkeypatch.setattr(erase_mod, "_delete_blobs", racing)
    report = two_tenants.delete("acme/a:2", reason="offboarding")
    assert report.blobs_deleted == 0 and runtime.store.exists(weights)
    assert fsck(runtime.db, runtime.store, deep=True).ok
    assert two_tenants.pull("gamma/g:1", dest=tmp_path / "g").version.number == 1
