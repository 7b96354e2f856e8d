"""The library heatmap in real headless Chromium: every pair of adapters on a base coloured by
the cosine of their deltas, the worst module on hover, a click leading to the pair's row;
the numbers are the API's. Screenshot: ``test-artifacts/screenshots/30-library-heatmap.png``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.client.local import LocalClient
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer
from tests.web.browsing import Tab

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize(("db_backend", "storage_backend"), [("sqlite", "local")]),
]


@pytest.fixture
def library_url(runtime: Runtime, adapter_library: dict[str, Path]) -> Iterator[str]:
    c = LocalClient(runtime)
    c.push(adapter_library["v1"], "acme/brand-voice")
    c.push(adapter_library["v2"], "acme/product")
    c.push(adapter_library["r8"], "acme/compliance")
    c.push(adapter_library["v1"], "beta/copy-of-voice")  # the same delta: cosine +1
    with LiveServer(create_app(runtime, background=False)) as srv:
        yield srv.url


def test_heatmap_shows_every_pair_and_the_worst_module(
    browser: Any, library_url: str, runtime: Runtime
) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = Tab(ctx.new_page(), library_url)
    page = tab.go("/ui/-/library?base=tiny-llama&threshold=0.5")
    cells = page.locator("#heatmap tbody td")
    assert cells.count() == 16  # 4 adapters x 4
    same = page.locator("#heatmap td[title^='acme/brand-voice:1 × beta/copy-of-voice:1']")
    assert same.inner_text() == "+1.00"
    assert "worst module model.layers." in (same.get_attribute("title") or "")
    assert "heat-10" in (same.get_attribute("class") or "")
    expected = LocalClient(runtime).interference(base="tiny-llama")
    pair = next(p for p in expected.pairs if {p.x, p.y} == {"acme/brand-voice:1", "acme/product:1"})
    cell = page.locator("#heatmap td[title^='acme/brand-voice:1 × acme/product:1']")
    assert cell.inner_text() == f"{pair.cosine:+.2f}"
    same.locator("a").click()
    row = page.locator("table.pairs tbody tr:target")
    assert "acme/brand-voice:1 × beta/copy-of-voice:1" in row.inner_text()
    tab.shot("30-library-heatmap")
    ctx.close()
    assert tab.problems == []
