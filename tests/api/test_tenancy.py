"""Issue 12, findings 1, 10 and 11: a namespace-scoped token stays inside its namespaces.

A scoped admin manages only tokens and webhooks of its own namespaces; base models (shared
by every namespace) are registered only by unscoped tokens; jobs and merge lineage are
filtered by what the viewer may read, in SQL; long polls are capped per token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.access import Principal, create_token
from registry.catalog.lineage import lineage
from registry.lifecycle import events
from registry.merge import job_queue
from registry.runtime import Runtime
from registry.server import create_app
from tests.api.tenants import ACME_ADAPTER, Tenants, build_tenants
from tests.fixtures.catalog import LiveServer, catalog_state


@pytest.fixture
def storage_backend() -> str:
    return "local"  # nothing here depends on the store


@pytest.fixture
def world(
    runtime: Runtime, adapter_library: dict[str, Path], base_library: dict[str, Path]
) -> Iterator[tuple[Tenants, str]]:
    t = build_tenants(runtime, adapter_library, base_library)
    with LiveServer(create_app(runtime, require_auth=True, background=False)) as srv:
        yield t, srv.url


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _forbidden(resp: httpx.Response) -> None:
    assert resp.status_code == 403, (resp.status_code, resp.text)
    assert resp.json()["error"]["code"] == "forbidden"


def test_scoped_admin_manages_only_its_own_namespaces(world: tuple[Tenants, str]) -> None:
    t, url = world
    h = _as(t.beta["admin"])
    before = catalog_state(t.runtime)
    for scope in (None, ["acme"], ["beta", "acme"], []):
        _forbidden(
            httpx.post(
                f"{url}/api/v1/tokens",
                headers=h,
                json={"name": "escape", "role": "admin", "namespaces": scope},
            )
        )
    # Someone else's token and a token that does not exist get the same answer.
    for token_id in (t.acme_token_id, 999_999):
        _forbidden(httpx.delete(f"{url}/api/v1/tokens/{token_id}", headers=h))
    for body in (
        {"url": "https://93.184.215.14/all"},
        {"url": "https://93.184.215.14/a", "namespace": "acme"},
    ):
        _forbidden(httpx.post(f"{url}/api/v1/webhooks", headers=h, json=body))
    for hook_id in (t.acme_webhook_id, 999_999):
        _forbidden(httpx.delete(f"{url}/api/v1/webhooks/{hook_id}", headers=h))
        _forbidden(httpx.get(f"{url}/api/v1/webhooks/{hook_id}/deliveries", headers=h))
    _forbidden(
        httpx.post(f"{url}/api/v1/bases", headers=h, json={"name": "b2", "source": "hf://x/y@main"})
    )
    assert catalog_state(t.runtime) == before

    listed = httpx.get(f"{url}/api/v1/tokens", headers=h).json()
    assert listed and all(tok["namespaces"] == ["beta"] for tok in listed)
    assert httpx.get(f"{url}/api/v1/webhooks", headers=h).json() == []

    # Inside its namespaces it is a full admin.
    made = httpx.post(
        f"{url}/api/v1/tokens",
        headers=h,
        json={"name": "ci", "role": "writer", "namespaces": ["beta"]},
    )
    assert made.status_code == 201 and made.json()["namespaces"] == ["beta"]
    assert httpx.delete(f"{url}/api/v1/tokens/{made.json()['id']}", headers=h).status_code == 200
    hook = httpx.post(
        f"{url}/api/v1/webhooks",
        headers=h,
        json={"url": "https://93.184.215.14/beta", "namespace": "beta"},
    )
    assert hook.status_code == 201, hook.text
    assert [w["id"] for w in httpx.get(f"{url}/api/v1/webhooks", headers=h).json()] == [
        hook.json()["id"]
    ]
    assert (
        httpx.get(f"{url}/api/v1/webhooks/{hook.json()['id']}/deliveries", headers=h).status_code
        == 200
    )
    # The unscoped admin still sees and manages everything.
    root = _as(t.root)
    assert len(httpx.get(f"{url}/api/v1/tokens", headers=root).json()) > len(listed)
    assert (
        httpx.delete(f"{url}/api/v1/webhooks/{t.acme_webhook_id}", headers=root).status_code == 204
    )


def test_jobs_are_visible_only_when_every_namespace_is(world: tuple[Tenants, str]) -> None:
    t, url = world
    h = _as(t.beta["writer"])
    listed = httpx.get(f"{url}/api/v1/jobs", headers=h).json()
    assert [j["id"] for j in listed] == [t.beta_job_id]
    assert listed[0]["namespace"] == "beta"
    # The mixed job writes into beta but reads acme: hidden, like acme's own.
    for job_id in (t.acme_job_id, t.mixed_job_id):
        assert httpx.get(f"{url}/api/v1/jobs/{job_id}", headers=h).status_code == 404
        r = httpx.post(f"{url}/api/v1/jobs/{job_id}/cancel", headers=h)
        assert r.status_code == 404, r.text
        page = httpx.get(f"{url}/ui/-/jobs/{job_id}", headers=h)
        assert page.status_code == 404 and ACME_ADAPTER not in page.text
    page = httpx.get(f"{url}/ui/-/jobs", headers=h)
    assert page.status_code == 200 and "acme" not in page.text
    assert job_queue.get_job(t.runtime.db, t.mixed_job_id).state == "queued"
    # A token that reads both namespaces sees the mixed job.
    both, _ = create_token(
        t.runtime.db, name="both", role="reader", actor="t", namespaces=["acme", "beta"]
    )
    seen = {j["id"] for j in httpx.get(f"{url}/api/v1/jobs", headers=_as(both)).json()}
    assert seen == {t.acme_job_id, t.beta_job_id, t.mixed_job_id}


def test_job_scope_is_applied_before_the_limit(world: tuple[Tenants, str]) -> None:
    t, _ = world
    for _ in range(3):  # newer than beta's job: a LIMIT first would leave beta nothing
        job_queue.enqueue(t.runtime.db, {"output": "acme/x", "inputs": []}, actor="root")
    beta = frozenset({"beta"})
    from registry.services.jobs import job_page

    page = job_page(t.runtime.db, state=None, before=None, limit=2, visible=beta)
    assert [j.id for j in page.items] == [t.beta_job_id] and page.next_before is None


def test_lineage_names_only_what_the_viewer_reads(world: tuple[Tenants, str]) -> None:
    t, url = world
    page = httpx.get(f"{url}/ui/beta/b/v1", headers=_as(t.beta["reader"]))
    assert page.status_code == 200
    assert "secret-merged" not in page.text and "acme" not in page.text
    full = httpx.get(f"{url}/ui/beta/b/v1", headers=_as(t.root))
    assert "acme/secret-merged" in full.text  # the link exists; beta just may not see it
    with t.runtime.db.read() as s:
        from sqlalchemy import select

        from registry.db import models as m

        beta_id = s.scalar(select(m.AdapterVersion.id).join(m.Adapter).where(m.Adapter.name == "b"))
        assert beta_id is not None
        assert lineage(s, beta_id, visible=frozenset({"beta"})).merged_into == []
        assert [x.ref for x in lineage(s, beta_id).merged_into] == ["acme/secret-merged:1"]


def test_the_event_feed_holds_only_the_callers_namespaces(world: tuple[Tenants, str]) -> None:
    t, url = world
    h = _as(t.beta["reader"])
    tail = max(e["id"] for e in httpx.get(f"{url}/api/v1/events", headers=_as(t.root)).json())
    # An acme change while beta is waiting does not end beta's wait with acme's event.
    with httpx.Client(timeout=30) as c:
        import threading

        answer: dict[str, Any] = {}

        def poll() -> None:
            answer["r"] = c.get(f"{url}/api/v1/events?since={tail}&wait=1", headers=h)

        waiter = threading.Thread(target=poll)
        waiter.start()
        httpx.post(
            f"{url}/api/v1/adapters/acme/{ACME_ADAPTER}/versions/1/evals",
            headers=_as(t.root),
            json={"evals": [{"metric": "m", "value": 1}]},
        ).raise_for_status()
        waiter.join()
    assert answer["r"].status_code == 200 and answer["r"].json() == []
    feed = httpx.get(f"{url}/api/v1/events", headers=h).json()
    assert feed and {e["namespace"] for e in feed} == {"beta"}
    assert httpx.get(f"{url}/api/v1/events?namespace=acme", headers=h).json() == []


def test_long_polls_are_capped_per_token(runtime: Runtime) -> None:
    """Finding 10: past the cap a wait is refused at once with 429 and Retry-After; other
    tokens and answers that need no wait are unaffected."""
    rt = Runtime(
        runtime.settings.model_copy(update={"max_waits_per_token": 2}),
        db=runtime.db,
        store=runtime.store,
    )
    app = create_app(rt, require_auth=True, background=False)
    one, _ = create_token(runtime.db, name="one", role="reader", actor="t")
    two, _ = create_token(runtime.db, name="two", role="reader", actor="t")

    tail = events.last_event_id(runtime.db)  # nothing newer: every wait waits
    feed = f"/api/v1/events?since={tail}"

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            waits = [
                asyncio.create_task(c.get(f"{feed}&wait=2", headers=_as(one))) for _ in range(2)
            ]
            for _ in range(1000):  # until both waits are held (bounded: never a hang)
                if sum(app.state.waits.active.values()) == 2:
                    break
                await asyncio.sleep(0.01)
            third = await c.get(f"{feed}&wait=2", headers=_as(one))
            other = await c.get(f"{feed}&wait=0.2", headers=_as(two))
            no_wait = await c.get(feed, headers=_as(one))
            return [third, other, no_wait, *await asyncio.gather(*waits)]

    third, other, no_wait, *held = asyncio.run(scenario())
    assert third.status_code == 429, third.text
    assert third.json()["error"]["code"] == "too_many_waits"
    assert int(third.headers["retry-after"]) > 0
    assert other.status_code == 200 and no_wait.status_code == 200
    assert [r.status_code for r in held] == [200, 200]
    assert app.state.waits.active == {}  # every wait handed its slot back


def test_principal_scope_rules() -> None:
    scoped = Principal(name="s", role="admin", namespaces=frozenset({"beta", "gamma"}))
    assert scoped.covers(["beta"]) and scoped.covers(["beta", "gamma"])
    assert not scoped.covers(None) and not scoped.covers([]) and not scoped.covers(["acme"])
    assert Principal(name="root", role="admin").covers(None)
