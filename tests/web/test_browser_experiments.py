"""The experiment page in headless Chromium: split bar, variant table with interval bars,
SRM alarm, ramp history, conclude with its gate preview; the adapter page lists running
experiments and the version page the experiments using it. Screenshot:
``test-artifacts/screenshots/30-experiment.png``."""

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

REPO = "acme/brand-voice"


@pytest.fixture
def tab(browser: Any, server_url: str) -> Iterator[Tab]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    t = Tab(ctx.new_page(), server_url)
    yield t
    ctx.close()
    assert t.problems == []


@pytest.fixture
def experiment(catalog: LocalClient) -> LocalClient:
    c = catalog
    c.promote(f"{REPO}:1", to="production", reason="baseline")
    c.experiment_create(
        REPO,
        "tone-test",
        variants=[("control", "@production"), ("warm", "2"), ("formal", "3")],
        split="80,10,10",
        metric="conversion",
        reason="Q1 campaign <b>tones</b>",
    )
    c.experiment_ramp(REPO, "tone-test", split="50,25,25", reason="no incidents")
    # The formal arm lost a fifth of its exposures: the SRM check must say so.
    for variant, successes, trials in (("control", 500, 5000), ("warm", 330, 2500)):
        c.experiment_record(REPO, "tone-test", variant=variant, successes=successes, trials=trials)
    c.experiment_record(REPO, "tone-test", variant="formal", successes=190, trials=2000)
    c.set_policy(REPO, {"min_evals": {"accuracy": 0.8}})
    return c


def test_experiment_page_shows_results_and_concludes_through_gates(
    tab: Tab, experiment: LocalClient
) -> None:
    page = tab.go(f"/ui/{REPO}")
    page.get_by_role("link", name="tone-test").click()
    page.wait_for_url("**/ui/-/experiment?*")
    assert page.locator("h1").inner_text() == "Experiment tone-test"
    legend = page.locator(".split-legend li")
    assert legend.count() == 3
    assert "50.0 %" in legend.nth(0).inner_text() and "25.0 %" in legend.nth(1).inner_text()
    assert page.locator("svg.split-bar rect").count() == 3
    srm = page.locator("#srm-status")
    assert "Sample ratio mismatch" in srm.inner_text()
    warm = page.locator("table.variants tr[data-variant=warm]")
    cells = warm.locator("td")
    assert cells.nth(1).inner_text() == "2500"
    assert cells.nth(2).inner_text() == "13.20 %"
    assert cells.nth(5).inner_text().startswith("+3.20 pts")
    assert warm.locator("svg rect").count() == 2  # interval and estimate
    history = page.locator("table.ramps tbody tr")
    assert history.count() == 2 and "no incidents" in history.nth(1).inner_text()
    assert "<b>tones</b>" in page.locator(".page-head").inner_text()  # escaped, not markup
    # Gate preview: v2 lacks the accuracy the policy asks for; v3 (0.83) passes.
    assert "accuracy" in page.locator("form.conclude[data-winner=warm]").inner_text()
    assert "passes the gates" in page.locator("form.conclude[data-winner=formal]").inner_text()
    tab.shot("30-experiment")

    form = page.locator("form.conclude[data-winner=warm]")
    form.get_by_role("button").click()
    page.wait_for_load_state()
    assert "Not concluded" in page.locator("[role=alert]").first.inner_text()
    assert experiment.experiment_show(REPO, "tone-test").experiment.state == "running"
    tab.problems.clear()  # the browser logs the 409 document load as a console error

    form = page.locator("form.conclude[data-winner=formal]")
    form.get_by_label("Reason").fill("lift is real")
    form.get_by_role("button").click()
    page.wait_for_url("**/ui/-/experiment?*")
    assert "winner formal" in page.locator(".page-head").inner_text()
    assert experiment.show(f"{REPO}@production").number == 3

    page = tab.go(f"/ui/{REPO}/v3")
    used = page.locator("ul.experiments li")
    assert used.count() == 1 and "tone-test" in used.inner_text()
    page = tab.go(f"/ui/{REPO}")
    assert page.locator("ul.experiments").count() == 0  # no experiment runs any more
