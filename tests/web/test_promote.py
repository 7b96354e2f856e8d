"""Promote and roll back from the dashboard on a server that requires tokens: the
confirmation page shows what the gates say, only a CSRF-checked POST by a maintainer
changes anything, and every refusal is an HTML page that leaves the catalog as it was."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from registry.client.local import LocalClient
from registry.runtime import Runtime
from registry.server import create_app
from registry.web.csrf import FIELD
from tests.fixtures.catalog import catalog_state
from tests.web.test_login import csrf_of, login

pytestmark = pytest.mark.parametrize("storage_backend", ["local"])

CONFIRM = "/ui/-/promote?ref=acme/voice:{n}&to={to}"


@pytest.fixture
def locked(runtime: Runtime, fleet: LocalClient) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, require_auth=True, background=False)) as c:
        yield c


def stages(c: LocalClient) -> dict[int, str | None]:
    return {v.number: v.stage for v in c.versions("acme/voice")}


def submit(client: TestClient, confirm_html: str, **fields: str) -> tuple[int, str, str]:
    """POST the confirmation page's form as a browser would (its hidden fields)."""
    data = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', confirm_html))
    r = client.post("/ui/-/promote", data={**data, **fields}, follow_redirects=False)
    return r.status_code, r.headers.get("location", ""), r.text


def test_maintainer_promotes_through_the_confirmation_page(
    locked: TestClient, fleet: LocalClient, token_for: Callable[..., str]
) -> None:
    login(locked, token_for("maintainer", name="alice"))
    version = locked.get("/ui/acme/voice/v3").text
    assert (
        'href="/ui/-/promote?ref=acme%2Fvoice%3A3&amp;to=production">Promote to production'
        in version
    )
    html = locked.get(CONFIRM.format(n=3, to="production")).text
    assert "Promote acme/voice:3 to production" in html
    assert re.search(
        r'href="/ui/acme/voice/v2">v2</a>, in production now, will be <strong>archived', html
    )
    assert "All gates pass" in html and "No policy on acme/voice or acme" in html
    assert stages(fleet) == {1: "archived", 2: "production", 3: "staging"}  # only a preview

    status, location, _ = submit(locked, html, reason="wins the A/B test")
    assert status == 303 and location == "/ui/acme/voice/v3?promoted=production"
    assert stages(fleet) == {1: "archived", 2: "archived", 3: "production"}
    page = locked.get(location).text
    assert "v3 is now in production" in page
    moved = [e for e in fleet.history("acme/voice") if e.kind == "stage.changed"][-1]
    assert (moved.version, moved.actor, moved.payload["reason"]) == (
        3,
        "alice",
        "wins the A/B test",
    )


def test_rollback_to_an_archived_version(
    locked: TestClient, fleet: LocalClient, token_for: Callable[..., str]
) -> None:
    login(locked, token_for("maintainer"))
    assert "Roll back to this version" in locked.get("/ui/acme/voice/v1").text
    html = locked.get(CONFIRM.format(n=1, to="production")).text
    assert "Roll back acme/voice to v1" in html and "moves from <strong>archived</strong>" in html
    assert re.search(r">v2</a>, in production now, will be <strong>archived", html)
    status, location, _ = submit(locked, html, reason="incident 42")
    assert status == 303 and location == "/ui/acme/voice/v1?promoted=production"
    assert stages(fleet) == {1: "production", 2: "archived", 3: "staging"}


def test_gates_are_shown_then_enforced(
    runtime: Runtime, locked: TestClient, fleet: LocalClient, token_for: Callable[..., str]
) -> None:
    fleet.set_policy(
        "acme",
        {
            "min_evals": {"accuracy": 0.8},
            "no_regression": ["accuracy"],
            "require_reason": True,
            "require_compatibility": True,
            "engines": ["vllm"],
        },
    )
    login(locked, token_for("maintainer"))
    html = locked.get(CONFIRM.format(n=1, to="production")).text
    gates = html[html.index('id="gates-h"') : html.index('action="/ui/-/promote"')]
    assert "Policy set on <strong>acme</strong>" in gates
    assert "✗ eval accuracy is 0.71, needs &gt;= 0.8" in gates
    assert "✗ eval accuracy regresses: 0.71 vs production v2&#39;s 0.78" in gates
    assert "All gates pass" not in gates and "This policy requires a reason" in gates
    assert re.search(r'<button type="submit" disabled', html)  # the page will not submit it
    before = catalog_state(runtime)
    status, _, refused = submit(locked, html)  # a hand-made POST: the server decides
    assert status == 409 and "Not promoted" in refused and "Nothing changed" in refused
    assert "a reason is required" in refused and "needs &gt;= 0.8" in refused
    assert catalog_state(runtime) == before
    # v3 meets every gate (0.83, checked, vLLM can serve it) once a reason is given.
    html = locked.get(CONFIRM.format(n=3, to="production")).text
    assert "All gates pass" in html and "Reason (required)" in html
    status, _, _ = submit(locked, html, reason="beats v2")
    assert status == 303 and stages(fleet)[3] == "production"


def test_a_policy_asking_for_admin(
    runtime: Runtime, locked: TestClient, fleet: LocalClient, token_for: Callable[..., str]
) -> None:
    fleet.set_policy("acme/voice", {"role": "admin"})
    login(locked, token_for("maintainer"))
    html = locked.get(CONFIRM.format(n=3, to="production")).text
    assert "The policy asks for the admin role; you are a maintainer" in html
    before = catalog_state(runtime)
    status, _, refused = submit(locked, html)
    assert status == 403 and "needs the admin role" in refused
    assert catalog_state(runtime) == before


def test_readers_see_no_buttons_and_are_refused(
    runtime: Runtime, locked: TestClient, fleet: LocalClient, token_for: Callable[..., str]
) -> None:
    login(locked, token_for("reader", name="rita"))
    version = locked.get("/ui/acme/voice/v1").text
    assert "/ui/-/promote" not in version and "Roll back" not in version
    r = locked.get(CONFIRM.format(n=1, to="production"))
    assert r.status_code == 403 and "needs the maintainer role" in r.text and "rita" in r.text
    before = catalog_state(runtime)
    # A POST made by hand, with a valid CSRF token (from the header's logout form).
    r = locked.post(
        "/ui/-/promote",
        data={FIELD: csrf_of(version), "ref": "acme/voice:1", "to": "production"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "needs the maintainer role" in r.text
    assert catalog_state(runtime) == before


def test_promote_posts_need_csrf_and_scope(
    runtime: Runtime, locked: TestClient, fleet: LocalClient, token_for: Callable[..., str]
) -> None:
    login(locked, token_for("maintainer"))
    before = catalog_state(runtime)
    r = locked.post(
        "/ui/-/promote", data={"ref": "acme/voice:1", "to": "production"}, follow_redirects=False
    )
    assert r.status_code == 403 and "security" in r.text
    assert catalog_state(runtime) == before
    # Bad requests are pages too: unknown stage, a version not named by number.
    assert locked.get(CONFIRM.format(n=1, to="gold")).status_code == 422
    assert locked.get("/ui/-/promote?ref=acme/voice&to=production").status_code == 422
    # A maintainer of another namespace does not learn that acme/voice exists.
    scoped = TestClient(locked.app)
    login(scoped, token_for("maintainer", name="beta-lead", namespaces=["beta"]))
    assert scoped.get(CONFIRM.format(n=1, to="production")).status_code == 404
