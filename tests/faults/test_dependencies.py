"""The database or storage going away: 503 with a code, never a 500 or a hang; /readyz says
so; the service recovers by itself when the dependency returns."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.client.local import LocalClient
from registry.config import load_settings
from registry.runtime import open_runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer
from tests.fixtures.proxy import FlakyProxy


@pytest.fixture
def pg_behind_proxy(pg_database: str, tmp_path: Path) -> Iterator[tuple[FlakyProxy, Any]]:
    from tests.fixtures.catalog import truncate_all

    truncate_all(pg_database)
    proxy = FlakyProxy("127.0.0.1", 5432).start()
    url = pg_database.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    rt = open_runtime(
        load_settings(
            home=tmp_path / "h", database_url=url, storage_url=(tmp_path / "blobs").as_uri()
        )
    )
    yield proxy, rt
    proxy.cut()
    rt.close()


def _timed_get(url: str) -> tuple[httpx.Response, float]:
    t = time.monotonic()
    r = httpx.get(url, timeout=30)
    return r, time.monotonic() - t


def test_postgres_restart(
    pg_behind_proxy: tuple[FlakyProxy, Any], adapter_library: dict[str, Path]
) -> None:
    proxy, rt = pg_behind_proxy
    LocalClient(rt).push(adapter_library["v1"], "acme/a")
    with LiveServer(create_app(rt, background=False)) as srv:
        assert httpx.get(f"{srv.url}/api/v1/resolve/acme/a").status_code == 200
        proxy.cut()
        time.sleep(0.5)  # past the resolve cache's 200 ms revalidation interval
        for path in (
            "/api/v1/resolve/acme/a",
            "/api/v1/adapters",
            "/api/v1/adapters/acme/a/versions/1",
        ):
            r, seconds = _timed_get(srv.url + path)
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "database_unavailable"
            assert seconds < 15
        ready = httpx.get(f"{srv.url}/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["storage"] == "ok"
        proxy.restore()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if httpx.get(f"{srv.url}/readyz", timeout=30).status_code == 200:
                break
            time.sleep(0.2)
        assert httpx.get(f"{srv.url}/api/v1/resolve/acme/a", timeout=30).status_code == 200


def test_s3_down(
    s3_server: str, s3_bucket: str, tmp_path: Path, adapter_library: dict[str, Path]
) -> None:
    host, port = s3_server.rsplit(":", 1)
    proxy = FlakyProxy("127.0.0.1", int(port)).start()
    rt = open_runtime(
        load_settings(
            home=tmp_path / "h",
            storage_url=f"s3://{s3_bucket}/blobs",
            s3_endpoint_url=f"http://127.0.0.1:{proxy.port}",
        )
    )
    try:
        v = LocalClient(rt).push(adapter_library["v1"], "acme/a").version
        with LiveServer(create_app(rt, background=False)) as srv:
            proxy.cut()
            r, seconds = _timed_get(f"{srv.url}/readyz")
            assert r.status_code == 503 and r.json()["checks"]["database"] == "ok"
            assert "S3" in r.json()["checks"]["storage"] and seconds < 20
            # A commit reads the stored blobs back: storage must answer.
            commit = f"{srv.url}/api/v1/adapters/acme/b/versions"
            body = {"files": [f.model_dump() for f in v.files]}
            t = time.monotonic()
            r = httpx.post(commit, json=body, timeout=60)
            assert r.status_code == 503 and r.json()["error"]["code"] == "storage_unavailable"
            assert time.monotonic() - t < 30
            proxy.restore()
            assert httpx.get(f"{srv.url}/readyz", timeout=30).status_code == 200
            assert httpx.post(commit, json=body, timeout=30).status_code == 201
    finally:
        proxy.cut()
        rt.close()
