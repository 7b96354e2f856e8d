"""Presigned upload plans are bounded per namespace: each planned upload is a row until gc,
so a writer cannot grow the table without bound by planning again and again."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from registry.config import Settings
from registry.runtime import Runtime, open_runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer


@pytest.fixture
def capped(settings: Settings) -> Iterator[Runtime]:
    """A runtime whose namespaces may hold 5 open uploads."""
    rt = open_runtime(settings.model_copy(update={"max_open_uploads": 5}))
    yield rt
    rt.close()


def _plan(client: httpx.Client, repo: str, seeds: range) -> httpx.Response:
    files = [
        {"path": f"f{i}.bin", "sha256": hashlib.sha256(b"%d" % i).hexdigest(), "size": 10}
        for i in seeds
    ]
    return client.post(f"/api/v1/adapters/{repo}/uploads", json={"files": files})


@pytest.mark.parametrize("storage_backend", ["s3"])
def test_plans_past_the_cap_are_refused_and_store_nothing(capped: Runtime) -> None:
    with (
        LiveServer(create_app(capped, background=False)) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as client,
    ):
        first = _plan(client, "acme/x", range(0, 3))
        assert first.status_code == 200, first.text
        assert len(first.json()["missing"]) == 3

        over = _plan(client, "acme/x", range(3, 6))
        assert over.status_code == 429
        error = over.json()["error"]
        assert error["code"] == "too_many_uploads"
        assert "acme" in error["message"] and "at most 5" in error["message"]

        # The refused plan wrote nothing: two more still fit, and another namespace has its own.
        assert _plan(client, "acme/x", range(6, 8)).status_code == 200
        assert _plan(client, "acme/x", range(8, 9)).status_code == 429
        assert _plan(client, "beta/y", range(0, 5)).status_code == 200
