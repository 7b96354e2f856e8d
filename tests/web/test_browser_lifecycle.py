"""Signing in, promoting, being refused and watching a merge job, in real headless Chromium
against a server that requires tokens (SQLite + local store; the pages do not depend on the
backend, ``test_lifecycle_pages.py`` covers every combination over HTTP). Screenshots of
the new pages land in ``test-artifacts/screenshots/`` (numbered 10 and up)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from registry.client.local import LocalClient
from registry.merge import job_queue
from registry.merge.worker import Worker
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer
from tests.web.browsing import Tab
from tests.web.conftest import HOSTILE_TARGET

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize(("db_backend", "storage_backend"), [("sqlite", "local")]),
]

VIEWPORT = {"width": 1280, "height": 860}


@pytest.fixture
def locked_url(runtime: Runtime, fleet: LocalClient) -> Iterator[str]:
    with LiveServer(create_app(runtime, require_auth=True, background=False)) as srv:
        yield srv.url


@pytest.fixture
def tab(browser: Any, locked_url: str) -> Iterator[Tab]:
    ctx = browser.new_context(viewport=VIEWPORT)
    t = Tab(ctx.new_page(), locked_url)
    yield t
    ctx.close()
    assert t.problems == []


def sign_in(tab: Tab, token: str) -> Any:
    page = tab.page
    page.goto(tab.base + "/ui/-/login")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/ui/")
    return page


def test_sign_in_and_promote_as_a_maintainer(
    tab: Tab, fleet: LocalClient, token_for: Callable[..., str]
) -> None:
    page = tab.page
    resp = page.goto(tab.base + "/ui/acme/voice")
    assert resp is not None and resp.status == 401
    tab.problems.clear()  # the browser logs the 401 document load as a console error
    page.get_by_role("link", name="Log in with an API token").click()
    page.wait_for_url("**/ui/-/login?next=%2Fui%2Facme%2Fvoice")
    page.get_by_label("API token").fill("lrg_wrong")
    page.get_by_role("button", name="Log in").click()
    assert "invalid token" in page.get_by_role("alert").inner_text()
    tab.problems.clear()  # the 401 answer again
    token = token_for("maintainer", name="alice")
    assert token not in page.url
    page.get_by_label("API token").fill(token)
    tab.shot("10-login")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/ui/acme/voice")
    assert token not in page.url
    account = page.locator(".account")
    assert (
        "Signed in as alice" in account.inner_text()
        and "MAINTAINER" in account.inner_text().upper()
    )
    assert page.locator("table.engines").first.is_visible()
    tab.shot("11-adapter-badges-compat")

    fleet.set_policy("acme", {"min_evals": {"accuracy": 0.8}, "require_reason": True})
    # Rolling back to v1 would fail its gates: the page says which, and will not submit.
    tab.go("/ui/acme/voice/v1")
    page.get_by_role("link", name="Roll back to this version").click()
    gates = page.locator(".gates")
    assert "eval accuracy is 0.71, needs >= 0.8" in gates.inner_text()
    assert page.get_by_role("button", name="Roll back").is_disabled()
    tab.shot("12-rollback-gates-unmet")

    tab.go("/ui/acme/voice/v3")
    page.get_by_role("link", name="Promote to production").click()
    page.wait_for_url("**/ui/-/promote?ref=acme%2Fvoice%3A3&to=production")
    assert page.get_by_role("status").inner_text() == "✓ All gates pass."
    assert "v2, in production now, will be archived" in page.locator(".changes").inner_text()
    page.get_by_label("Reason (required)").fill("beats v2 on accuracy")
    tab.shot("13-promote-confirm")
    page.get_by_role("button", name="Promote to production").click()
    page.wait_for_url("**/ui/acme/voice/v3?promoted=production")
    assert "v3 is now in production" in page.get_by_role("status").inner_text()
    assert page.locator("h1 .badge.stage-production").text_content() == "production"
    tab.shot("14-promoted")
    assert {v.number: v.stage for v in fleet.versions("acme/voice")} == {
        1: "archived",
        2: "archived",
        3: "production",
    }

    tab.go("/ui/acme/voice-merged/v1")
    assert page.locator("dt", has_text="Merged from").is_visible()
    tab.shot("15-merged-lineage")
    tab.go("/ui/acme/style/v1")
    # A finding quotes a module name that looks like markup: shown as text, nothing ran.
    assert HOSTILE_TARGET in page.locator("table.findings").inner_text()
    tab.shot("16-check-findings")
    tab.go("/ui/?stage=production")
    assert page.locator("a.adapter-link").all_inner_texts() == ["voice"]
    tab.shot("17-stage-filter")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/ui/-/login?signed_out=1")
    assert page.get_by_text("You are signed out").is_visible()
    resp = page.goto(tab.base + "/ui/")
    assert resp is not None and resp.status == 401
    tab.problems.clear()


def test_a_reader_is_refused(tab: Tab, fleet: LocalClient, token_for: Callable[..., str]) -> None:
    page = sign_in(tab, token_for("reader", name="rita"))
    tab.go("/ui/acme/voice/v1")
    assert page.get_by_role("link", name="Roll back to this version").count() == 0
    assert page.locator("a[href*='/ui/-/promote']").count() == 0
    resp = page.goto(tab.base + "/ui/-/promote?ref=acme/voice:1&to=production")
    assert resp is not None and resp.status == 403
    assert page.get_by_role("heading", level=1).inner_text() == "Refused"
    assert "needs the maintainer role" in page.locator(".message").inner_text()
    tab.shot("18-refused-reader")
    tab.problems.clear()  # the 403 document load
    # Posting anyway, with the page's own CSRF token: still 403, nothing moves.
    status = page.evaluate(
        """async () => {
            const token = document.querySelector("input[name=csrf_token]").value;
            const body = new URLSearchParams({csrf_token: token, ref: "acme/voice:1", to: "production"});
            const r = await fetch("/ui/-/promote", {method: "POST", body});
            return r.status;
        }"""
    )
    assert status == 403
    tab.problems.clear()  # the refused fetch is logged too
    assert fleet.show("acme/voice:1").stage == "archived"


def test_watch_a_merge_job_progress(
    tab: Tab, runtime: Runtime, fleet: LocalClient, token_for: Callable[..., str]
) -> None:
    page = sign_in(tab, token_for("reader"))
    (queued,) = [j for j in fleet.jobs() if j["state"] == "queued"]
    job_id = queued["id"]
    # Act as the worker by hand: claim the job, then publish progress by heartbeat.
    worker = Worker(runtime, worker_id="browser-test-worker", lease_s=600)
    claimed = job_queue.claim(runtime.db, worker.worker_id, lease_s=600, job_id=job_id)
    assert claimed is not None

    def beat(progress: float, done: int) -> None:
        status = {
            "phase": "merging",
            "shards_done": done,
            "shards_total": 4,
            "rate_bytes_s": 12.5e6,
            "eta_s": 30 * (1 - progress),
        }
        assert job_queue.heartbeat(
            runtime.db, job_id, worker.worker_id, lease_s=600, progress=progress, status=status
        )

    beat(0.1, 0)
    tab.go(f"/ui/-/jobs/{job_id}")
    bar = page.locator("progress")
    assert float(bar.get_attribute("value")) == pytest.approx(0.1)
    beat(0.55, 2)
    # app.js polls /api/v1/jobs/{id} (authenticated by the session cookie) once a second.
    # (Arrow functions, not expression strings: the page's CSP forbids eval.)
    page.wait_for_function("() => document.querySelector('progress').value >= 0.55", timeout=10_000)
    text = page.locator("[data-progress-text]").inner_text()
    assert text.startswith("55%") and "shard 3 of 4" in text and "12.5 MB/s" in text
    tab.shot("19-job-running")

    tab.go("/ui/-/jobs")
    row = page.locator(f"tr[data-job='{job_id}']")
    assert row.locator("[data-job-state]").text_content() == "running"
    beat(0.8, 3)
    page.wait_for_function(
        f"() => document.querySelector(\"tr[data-job='{job_id}'] progress\").value >= 0.8",
        timeout=10_000,
    )
    tab.shot("20-jobs")

    # Now let the real merge finish it: the job page turns to succeeded and links the output.
    tab.go(f"/ui/-/jobs/{job_id}")
    worker.run(claimed)
    page.wait_for_selector("text=Output:", timeout=15_000)
    assert page.locator("h1 [data-job-state]").text_content() == "succeeded"
    assert page.locator("progress").get_attribute("value") == "1.0000"
    tab.shot("21-job-done")

    tab.go("/ui/-/bases")
    tab.shot("22-bases")
    tab.go("/ui/-/bases/tiny-llama")
    assert "LlamaForCausalLM" in page.locator("main").inner_text()
    tab.shot("23-base-model")
