"""Namespace quotas: set by admins, shown with usage, refused with ``quota_exceeded``
inside the commit transaction (so racing pushes cannot both pass), merged models included."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest

from registry.catalog import quotas
from registry.catalog.quotas import parse_size
from registry.client.local import LocalClient
from registry.errors import Forbidden, InvalidInput, NotFound, QuotaExceeded
from registry.principal import Principal
from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state

BASE = "tiny-llama"


def test_parse_size() -> None:
    assert parse_size("10G") == 10 * 10**9
    assert parse_size("1.5TiB") == int(1.5 * 2**40)
    assert parse_size("500mb") == 500 * 10**6
    assert parse_size("1234") == 1234
    for bad in ("", "ten", "-1G", "5Xi", "1e9", "9" * 30):
        with pytest.raises(InvalidInput):
            parse_size(bad)


def test_version_quota_refuses_the_push_that_would_pass_it(
    client: Any, runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    client.push(adapter_library["v1"], "acme/a", base=BASE)
    info = client.set_quota("acme", max_versions=2)
    assert (info.versions, info.max_versions, info.max_bytes) == (1, 2, None)
    client.push(adapter_library["v2"], "acme/b", base=BASE)  # the second of two: allowed
    rows = catalog_state(runtime)["rows"]
    with pytest.raises(QuotaExceeded) as refused:
        client.push(adapter_library["r8"], "acme/a", base=BASE)
    assert "namespace acme" in refused.value.message and "limit is 2" in refused.value.message
    assert refused.value.code == "quota_exceeded"
    assert catalog_state(runtime)["rows"] == rows  # no row written
    # An identical push creates nothing, so it is not refused; other namespaces are free.
    assert client.push(adapter_library["v1"], "acme/a", base=BASE).created is False
    client.push(adapter_library["r8"], "beta/a", base=BASE)
    # Room again after a deletion; clearing the limit lifts it.
    client.delete("acme/b", reason="make room")
    client.push(adapter_library["r8"], "acme/a", base=BASE)
    client.set_quota("acme", max_versions=None)
    client.push(adapter_library["v2"], "acme/a", base=BASE)
    shown = client.namespace_info("acme")
    assert (shown.adapters, shown.versions, shown.max_versions) == (1, 3, None)


def test_byte_quota_counts_every_version_size(
    client: Any, adapter_library: dict[str, Path]
) -> None:
    first = client.push(adapter_library["v1"], "acme/a", base=BASE).version
    client.set_quota("acme", max_bytes=2 * first.size - 1)
    with pytest.raises(QuotaExceeded) as refused:
        client.push(adapter_library["v2"], "acme/a", base=BASE)
    assert refused.value.message.count("limit is") == 1
    client.set_quota("acme", max_bytes=2 * first.size)  # max_versions kept (none)
    client.push(adapter_library["v2"], "acme/a", base=BASE)
    info = client.namespace_info("acme")
    assert (info.bytes, info.max_bytes, info.max_versions) == (2 * first.size, 2 * first.size, None)


def test_quota_needs_an_admin_of_that_namespace(runtime: Runtime) -> None:
    before = catalog_state(runtime)
    writer = Principal(name="w", role="writer")
    with pytest.raises(Forbidden):
        quotas.set_quota(runtime.db, "acme", principal=writer, max_versions=1)
    other = Principal(name="b", role="admin", namespaces=frozenset({"beta"}))
    with pytest.raises(NotFound):
        quotas.set_quota(runtime.db, "acme", principal=other, max_versions=1)
    with pytest.raises(InvalidInput):
        quotas.set_quota(runtime.db, "acme", principal=Principal("a", "admin"), max_versions=-1)
    with pytest.raises(NotFound):
        quotas.namespace_info(runtime.db, "acme", principal=Principal("a", "admin"))
    assert catalog_state(runtime) == before
    # Set before the first push: the namespace is created empty, with its quota.
    info = quotas.set_quota(runtime.db, "acme", principal=Principal("a", "admin"), max_bytes=0)
    assert (info.versions, info.bytes, info.max_bytes) == (0, 0, 0)


def test_racing_pushes_cannot_both_take_the_last_slot(
    runtime: Runtime, adapter_library: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each push counts the usage inside its transaction; a barrier makes both count at the
    same time unless the namespace lock makes the second wait for the first's commit."""
    c = LocalClient(runtime)
    c.push(adapter_library["v1"], "acme/a", base=BASE)
    c.set_quota("acme", max_versions=2)
    barrier = threading.Barrier(2)
    original = quotas.usage

    def counted_together(*args: Any) -> tuple[int, int]:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=3)  # breaks when the other push is held by the lock
        return original(*args)

    monkeypatch.setattr(quotas, "usage", counted_together)
    outcomes: list[str] = []

    def push(name: str, key: str) -> None:
        try:
            LocalClient(runtime).push(adapter_library[key], f"acme/{name}", base=BASE)
            outcomes.append("pushed")
        except QuotaExceeded:
            outcomes.append("refused")

    threads = [threading.Thread(target=push, args=a) for a in (("b", "v2"), ("c", "r8"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["pushed", "refused"]
    assert c.namespace_info("acme").versions == 2


def test_merged_models_count_against_the_quota(
    runtime: Runtime, adapter_library: dict[str, Path], base_library: dict[str, Path]
) -> None:
    c = LocalClient(runtime)
    c.add_base(BASE, str(base_library["tiny"]))
    c.push(adapter_library["v1"], "acme/a", base=BASE)
    c.set_quota("acme", max_versions=1)
    job = c.merge(["acme/a:1"], base=BASE, output="acme/merged")["job"]
    done = c.wait_job(job["id"])
    assert done["state"] == "failed" and "quota" in done["error"]
    assert [a.name for a in c.list_adapters("acme")] == ["a"]
