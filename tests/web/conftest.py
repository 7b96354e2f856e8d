"""Dashboard fixtures: a small catalog worth looking at, and an HTTP client on a live server.

- ``catalog``: ``acme/brand-voice`` (three versions with evals and tags; v1's description
  and a tag hold markup), ``acme/support-bot``, and ``beta/summarizer`` (a ``<script>``
  description), pushed through LocalClient into ``runtime`` (every backend combination
  the ``runtime`` fixture runs on).
- ``web``: an httpx client for ``server_url`` that does not follow redirects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.client.local import LocalClient
from registry.domain import EvalRecord
from registry.runtime import Runtime

BASE = "meta-llama/Llama-3.1-8B"
HOSTILE = '<script>alert("pwned")</script> & <b>bold</b>'


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
