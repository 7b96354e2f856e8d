"""The dashboard's Regions page and a version's region presence, over HTTP and in real
headless Chromium. Screenshot: ``test-artifacts/screenshots/40-regions.png``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.client.local import LocalClient
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer
from tests.regions_ops.conftest import RegionBuckets, replicate
from tests.web.browsing import ARGS, CHROMIUM, Tab


@pytest.fixture
def regions_url(
    region_runtime: Runtime, region_buckets: RegionBuckets, adapter_library: dict[str, Path]
) -> Iterator[str]:
    c = LocalClient(region_runtime)
    c.push(adapter_library["v1"], "acme/voice")
    replicate(region_runtime, region_buckets)  # v1 everywhere
    c.push(adapter_library["v2"], "acme/voice")  # v2 still only in the primary
    with LiveServer(create_app(region_runtime, background=False)) as srv:
        yield srv.url


def test_regions_page_and_version_presence(regions_url: str, region_runtime: Runtime) -> None:
    status = LocalClient(region_runtime).region_status()
    eu = next(r for r in status.regions if r.name == "eu")
    assert eu.backlog_blobs > 0
    page = httpx.get(f"{regions_url}/ui/-/regions", timeout=30)
    assert page.status_code == 200
    assert 'data-region="eu"' in page.text and 'data-region="us"' in page.text
    v1 = httpx.get(f"{regions_url}/ui/acme/voice/v1", timeout=30).text
    assert "Complete in:" in v1 and "still copying" not in v1
    v2 = httpx.get(f"{regions_url}/ui/acme/voice/v2", timeout=30).text
    assert "still copying to:" in v2 and "adapter_model.safetensors" in v2


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_regions_page_in_a_browser(browser: Any, regions_url: str, region_runtime: Runtime) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = Tab(ctx.new_page(), regions_url)
    page = tab.go("/ui/-/regions")
    # The page probes each store as it renders (5 s each at most): on a loaded machine a
    # store's first probe (its client built on first use) can miss that, so the page is
    # loaded again, a few times at most, until every store has answered.
    for _ in range(10):
        states = [
            page.locator(f"tr[data-region='{n}']").inner_text().lower()
            for n in ("primary", "eu", "us")
        ]
        if all("ok" in s for s in states):
            break
        page = tab.go("/ui/-/regions")
    status = {r.name: r for r in LocalClient(region_runtime).region_status().regions}
    for name in ("primary", "eu", "us"):
        row = page.locator(f"tr[data-region='{name}']")
        assert row.locator("td.backlog").inner_text() == str(status[name].backlog_blobs)
        assert "ok" in row.inner_text().lower()
    assert page.locator("nav a[aria-current='page']").inner_text() == "Regions"
    tab.shot("40-regions")
    page = tab.go("/ui/acme/voice/v2")
    assert "still copying to:" in page.locator("section[aria-labelledby='regions-h']").inner_text()
    ctx.close()
    assert tab.problems == []
