"""The dashboard in real headless Chromium (Debian's, driven by Playwright): browse, search,
open a version, compare, page through lists, use it by keyboard and without JavaScript.

One backend combination (SQLite + local store): what the browser sees does not depend on
the backend, and ``test_pages.py`` covers every combination over plain HTTP. Screenshots of
the main pages land in ``test-artifacts/screenshots/`` at the repository root.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from registry.client.local import LocalClient
from tests.web.browsing import Tab
from tests.web.conftest import HOSTILE

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize(("db_backend", "storage_backend"), [("sqlite", "local")]),
]


@pytest.fixture
def tab(browser: Any, server_url: str, catalog: LocalClient) -> Iterator[Tab]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    t = Tab(ctx.new_page(), server_url)
    yield t
    ctx.close()
    assert t.problems == []


def test_browse_search_open_version_and_compare(tab: Tab) -> None:
    page = tab.go("/")
    assert page.url.endswith("/ui/")
    assert page.get_by_role("heading", name="acme").is_visible()
    tab.shot("01-adapters")

    # "/" jumps to the search box; Enter submits the GET form.
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("brand")
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/?q=brand**")
    links = page.locator("a.adapter-link")
    assert links.all_inner_texts() == ["brand-voice"]
    tab.shot("02-search")

    links.first.click()
    page.wait_for_url("**/ui/acme/brand-voice")
    assert page.get_by_role("heading", level=1).inner_text() == "acme / brand-voice"
    assert page.locator("figure.chart svg").count() == 2
    rows = page.locator("table.versions tbody tr")
    assert rows.count() == 3 and rows.first.locator("th").inner_text().strip() == "v3"
    tab.shot("03-adapter")

    page.get_by_role("link", name="v1", exact=True).click()
    page.wait_for_url("**/ui/acme/brand-voice/v1")
    # The hostile description is on screen as text; no script ran (Tab checks dialogs).
    assert page.locator("p.description").inner_text() == HOSTILE
    assert page.locator("table.files code").first.is_visible()
    tab.shot("04-version")

    page.go_back()
    page.get_by_label("Compare v1 as A").check()
    page.get_by_label("Compare v3 as B").check()
    page.get_by_role("button", name="Compare A and B").click()
    page.wait_for_url("**/compare?*")
    assert sorted(page.url.split("?")[1].split("&")) == ["a=1", "b=3"]
    acc = page.locator("table.compare tr", has_text="accuracy (mmlu)")
    assert "+0.12" in acc.inner_text() and "better" in acc.inner_text()
    assert page.locator("tr.differs", has_text="rank (r)").count() == 1
    tab.shot("05-compare")


def test_filters_and_pagination(tab: Tab) -> None:
    page = tab.go("/ui/?limit=2")
    page.get_by_label("Namespace").fill("acme")
    page.get_by_label("Tag", exact=True).fill("owner=marketing")
    page.get_by_role("button", name="Search").click()
    # expect() waits for the navigation a click starts (a bare read raced it under load).
    links = page.locator("a.adapter-link")
    expect(links).to_have_text(["brand-voice"], timeout=10_000)

    page = tab.go("/ui/?limit=2")
    links = page.locator("a.adapter-link")
    expect(links).to_have_text(["brand-voice", "support-bot"], timeout=10_000)
    page.get_by_role("link", name="Next ›").click()
    expect(links).to_have_text(["summarizer"], timeout=10_000)
    page.get_by_role("link", name="‹ Previous").click()
    expect(links).to_have_text(["brand-voice", "support-bot"], timeout=10_000)


def test_keyboard_only(tab: Tab) -> None:
    page = tab.go("/ui/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "q"  # first control in main
    # Tab through to an adapter and open it with Enter.
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "brand-voice":
            break
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/acme/brand-voice")


def test_works_without_javascript(browser: Any, server_url: str, catalog: LocalClient) -> None:
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 860})
    page = ctx.new_page()
    page.goto(server_url + "/ui/")
    page.get_by_label("Name", exact=True).fill("support")
    page.get_by_label("Name", exact=True).press("Enter")
    page.wait_for_url("**q=support**")
    assert page.locator("a.adapter-link").all_inner_texts() == ["support-bot"]
    page.goto(server_url + "/ui/acme/brand-voice")
    page.get_by_role("button", name="Compare A and B").click()  # v2 -> v3 preselected
    page.wait_for_url("**/compare?*")
    assert sorted(page.url.split("?")[1].split("&")) == ["a=2", "b=3"]
    assert page.locator("button.copy").count() == 0  # enhancement only with JS
    ctx.close()


def test_copy_buttons_and_dark_mode(browser: Any, server_url: str, catalog: LocalClient) -> None:
    ctx = browser.new_context(color_scheme="dark", viewport={"width": 1280, "height": 860})
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=server_url)
    tab = Tab(ctx.new_page(), server_url)
    page = tab.go("/ui/acme/brand-voice/v3")
    cid = catalog.show("acme/brand-voice:3").content_id
    button = page.get_by_role("button", name=f"Copy {cid}")
    button.click()
    # The label flips once the clipboard write resolves (async; slow under load), and
    # back after 1.5 s: wait for it rather than read it right away.
    expect(button).to_have_text("Copied", timeout=10_000)
    assert page.evaluate("navigator.clipboard.readText()") == cid
    tab.shot("06-version-dark")
    tab.go("/ui/acme/brand-voice")
    tab.shot("07-adapter-dark")
    ctx.close()
    assert tab.problems == []
