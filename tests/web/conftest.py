"""Dashboard fixtures: a small catalog worth looking at, and an HTTP client on a live server.

- ``catalog``: ``acme/brand-voice`` (three versions with evals and tags; v1's description
  and a tag hold markup), ``acme/support-bot``, and ``beta/summarizer`` (a ``<script>``
  description), pushed through LocalClient into ``runtime`` (every backend combination
  the ``runtime`` fixture runs on).
- ``fleet``: lifecycle state on the registered base ``tiny-llama``: ``acme/voice`` v1
  archived, v2 in production (promoted with a markup-laden reason), v3 in staging and
  ``@champion``, all checked; ``acme/product`` v1; ``acme/style`` v1 whose config declares
  a target module named like markup (its check quotes it); ``acme/voice-merged:1`` merged
  from voice:2 (x0.7) and product:1 (x0.3) by job 1; job 2 queued.
- ``web``: an httpx client for ``server_url`` that does not follow redirects.
- ``token_for``: creates an API token with a role and returns its plaintext.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.access import create_token
from registry.client.local import LocalClient
from registry.domain import EvalRecord
from registry.runtime import Runtime
from tests.web.browsing import ARGS, CHROMIUM

BASE = "meta-llama/Llama-3.1-8B"
HOSTILE = '<script>alert("pwned")</script> & <b>bold</b>'
TINY = "tiny-llama"
HOSTILE_TARGET = "<img src=x onerror=alert(1)>"


def _scores(accuracy: float, loss: float) -> list[EvalRecord]:
    return [
        EvalRecord(metric="accuracy", value=accuracy, dataset="mmlu"),
        EvalRecord(metric="loss", value=loss, higher_is_better=False),
    ]


@pytest.fixture
def catalog(runtime: Runtime, adapter_library: dict[str, Path]) -> LocalClient:
    c = LocalClient(runtime)
    c.push(
        adapter_library["v1"],
        "acme/brand-voice",
        base=BASE,
        description=HOSTILE,
        tags={"owner": "marketing", "note": "<i>x</i>"},
        evals=_scores(0.71, 1.9),
    )
    c.push(adapter_library["v2"], "acme/brand-voice", base=BASE, evals=_scores(0.78, 1.7))
    c.push(
        adapter_library["r8"],
        "acme/brand-voice",
        base=BASE,
        description="Rank 8, tuned on the 2026 style guide",
        tags={"owner": "marketing"},
        evals=_scores(0.83, 1.75),
    )
    c.push(adapter_library["v1"], "acme/support-bot", base="tiny-llama", tags={"owner": "cx"})
    c.push(adapter_library["v2"], "beta/summarizer", base=BASE, description=HOSTILE)
    return c


@pytest.fixture
def web(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30, follow_redirects=False) as c:
        yield c


@pytest.fixture
def fleet(
    runtime: Runtime,
    adapter_library: dict[str, Path],
    base_library: dict[str, Path],
    tmp_path: Path,
) -> LocalClient:
    c = LocalClient(runtime)
    c.add_base(TINY, str(base_library["tiny"]))
    for key, acc in (("v1", 0.71), ("v2", 0.78), ("r8", 0.83)):
        c.push(adapter_library[key], "acme/voice", base=TINY, evals=_scores(acc, 1.8))
    c.push(adapter_library["v1"], "acme/product", base=TINY)
    hostile = tmp_path / "hostile-adapter"
    shutil.copytree(adapter_library["v2"], hostile)
    config = json.loads((hostile / "adapter_config.json").read_text())
    config["target_modules"] = [*config["target_modules"], HOSTILE_TARGET]
    (hostile / "adapter_config.json").write_text(json.dumps(config))
    c.push(hostile, "acme/style", base=TINY, description=HOSTILE)
    c.promote("acme/voice:1", to="production", reason="first")
    c.promote("acme/voice:2", to="production", reason=HOSTILE)
    c.promote("acme/voice:3", to="staging")
    c.set_alias("acme/voice", "champion", 3)
    done = c.merge(["acme/voice:2", "acme/product:1"], base=TINY, weights=[0.7, 0.3])
    assert c.wait_job(done["job"]["id"])["state"] == "succeeded"
    c.merge(["acme/product:1"], base=TINY)  # stays queued: no worker runs here
    return c


@pytest.fixture
def token_for(runtime: Runtime) -> Callable[..., str]:
    def make(role: str, *, name: str | None = None, namespaces: list[str] | None = None) -> str:
        token, _ = create_token(
            runtime.db, name=name or role, role=role, actor="admin", namespaces=namespaces
        )
        return token

    return make


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright, one per test module."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()
