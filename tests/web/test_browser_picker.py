"""The namespace picker in real headless Chromium: typing asks the server for the namespaces
that start with it (a bounded list in the field's datalist), picking one filters the
adapters; without JavaScript the same field filters as typed and offers the matches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from registry.catalog import browse
from registry.runtime import Runtime
from tests.web.browsing import Tab
from tests.web.seed import seed_catalog

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize(("db_backend", "storage_backend"), [("sqlite", "local")]),
]

OPTIONS = "Array.from(document.querySelectorAll('#namespace-options option'), o => o.value)"


@pytest.fixture
def teams(runtime: Runtime) -> Runtime:
    """45 namespaces ns000..ns044, one adapter each: more than the picker ever lists."""
    seed_catalog(runtime.db, namespaces=45, adapters_per_namespace=1, versions_per_adapter=2)
    return runtime


@pytest.fixture
def tab(browser: Any, server_url: str, teams: Runtime) -> Iterator[Tab]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    t = Tab(ctx.new_page(), server_url)
    yield t
    ctx.close()
    assert t.problems == []


def test_typing_asks_the_server_for_matching_namespaces(tab: Tab) -> None:
    page = tab.go("/ui/?limit=4")  # a short page for the screenshot
    first = [f"ns{i:03d}" for i in range(browse.NAMESPACE_SUGGESTIONS)]
    assert page.evaluate(OPTIONS) == first  # server-rendered, bounded
    field = page.get_by_label("Namespace")
    field.click()
    field.press_sequentially("ns03", delay=30)
    # app.js replaces the options with the server's answer for what was typed.
    expect(page.locator("#namespace-options")).to_have_attribute("data-prefix", "ns03")
    assert page.evaluate(OPTIONS) == [f"ns{i:03d}" for i in range(30, 40)]
    field.press_sequentially("7")
    expect(page.locator("#namespace-options")).to_have_attribute("data-prefix", "ns037")
    assert page.evaluate(OPTIONS) == ["ns037"]
    tab.shot("08-namespace-picker")
    field.press("Enter")
    page.wait_for_url("**/ui/?*namespace=ns037*")
    assert page.locator("a.adapter-link").all_inner_texts() == ["adapter-00000"]
    assert page.get_by_role("heading", name="ns037").is_visible()
    assert field.input_value() == "ns037"


def test_without_javascript_a_partial_name_lists_the_matches(
    browser: Any, server_url: str, teams: Runtime
) -> None:
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 860})
    tab = Tab(ctx.new_page(), server_url)
    page = tab.go("/ui/")
    page.get_by_label("Namespace").fill("ns04")
    page.get_by_label("Namespace").press("Enter")
    page.wait_for_url("**namespace=ns04**")
    matches = page.get_by_role("navigation", name="Namespaces starting with ns04")
    assert matches.get_by_role("link").all_inner_texts() == [f"ns{i:03d}" for i in range(40, 45)]
    tab.shot("09-namespace-picker-no-js")
    matches.get_by_role("link", name="ns042").click()
    page.wait_for_url("**namespace=ns042")
    assert page.locator("a.adapter-link").all_inner_texts() == ["adapter-00000"]
    ctx.close()
    assert tab.problems == []
