"""What a newcomer sees in a browser: the API reference renders with no internet (its
assets come from the package), and the dashboard's header and filters fit a 400 px
phone screen."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from registry.client.local import LocalClient
from tests.web.browsing import Tab

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize(("db_backend", "storage_backend"), [("sqlite", "local")]),
]


@pytest.fixture
def offline_tab(browser: Any, server_url: str) -> Iterator[tuple[Tab, list[str]]]:
    """A tab that can reach the lorareg server and nothing else."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    blocked: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(server_url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    ctx.route("**/*", only_local)
    yield Tab(ctx.new_page(), server_url), blocked
    ctx.close()


def test_api_docs_render_offline(offline_tab: tuple[Tab, list[str]]) -> None:
    tab, blocked = offline_tab
    page = tab.go("/docs")
    page.locator(".opblock").first.wait_for(timeout=30_000)
    assert page.locator(".opblock").count() > 10
    assert page.get_by_text("/api/v1/resolve/{namespace}/{name}").first.is_visible()
    tab.shot("docs-offline")
    assert blocked == []
    page = tab.go("/redoc")
    page.get_by_text("/api/v1/resolve/{namespace}/{name}").first.wait_for(timeout=30_000)
    # ReDoc's own "by Redocly" logo is the only thing it would fetch: cosmetic.
    assert all(u.endswith(".svg") for u in blocked), blocked
    assert not [p for p in tab.problems if "ERR_FAILED" not in p], tab.problems


@pytest.fixture
def phone(browser: Any, server_url: str, catalog: LocalClient) -> Iterator[Tab]:
    ctx = browser.new_context(viewport={"width": 400, "height": 800})
    t = Tab(ctx.new_page(), server_url)
    yield t
    ctx.close()
    assert t.problems == []


def test_header_fits_400_px_and_says_what_an_open_server_is(phone: Tab) -> None:
    page = phone.go("/ui/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways: {width}px"
    header = page.locator("header.top").bounding_box()
    assert header is not None and header["width"] <= 400
    for link in page.locator("header.top a, header.top .who").all():
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 400, link
    who = page.locator("header.top .who").inner_text()
    assert "open server: no sign-in needed here, everyone acts as admin" in who
    assert page.get_by_role("link", name="Log in with a token").is_visible()
    phone.shot("header-400px")


@pytest.mark.parametrize("width", [400, 1280])
def test_base_model_placeholder_is_not_cut_off(browser: Any, server_url: str,
                                               catalog: LocalClient, width: int) -> None:  # fmt: skip
    ctx = browser.new_context(viewport={"width": width, "height": 800})
    page = ctx.new_page()
    page.goto(server_url + "/ui/")
    room, needed = page.evaluate(
        """() => {
            const input = document.getElementById('base');
            const style = getComputedStyle(input);
            const ctx = document.createElement('canvas').getContext('2d');
            ctx.font = style.font;
            const inner = input.clientWidth - parseFloat(style.paddingLeft)
                - parseFloat(style.paddingRight);
            return [inner, ctx.measureText(input.placeholder).width];
        }"""
    )
    ctx.close()
    assert needed <= room, f"placeholder needs {needed:.0f}px, the box has {room:.0f}px"
