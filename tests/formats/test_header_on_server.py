"""A hostile safetensors header against a live server: refused with the header's code,
nothing stored, and the server keeps answering /healthz while it refuses."""

from __future__ import annotations

import hashlib
import struct
import threading
import time
from pathlib import Path

import httpx

from registry.client.local import LocalClient
from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state


def _freezing_weights() -> bytes:
    """600 dimensions of 4,200 digits (2.5 MB): 18.7 s of math.prod and a 500 before."""
    dim = "9" * 4200
    body = (
        '{"t": {"dtype": "F32", "shape": [' + ",".join([dim] * 600) + '], "data_offsets": [0, 4]}}'
    ).encode()
    return struct.pack("<Q", len(body)) + body + bytes(4)


def test_freezing_header_is_refused_while_healthz_answers(
    server_url: str, runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    v1 = LocalClient(runtime).push(adapter_library["v1"], "acme/a", base="tiny-llama")
    data = _freezing_weights()
    sha = hashlib.sha256(data).hexdigest()
    files = [
        {"path": f.path, "sha256": f.sha256, "size": f.size}
        for f in v1.version.files
        if f.path != "adapter_model.safetensors"
    ] + [{"path": "adapter_model.safetensors", "sha256": sha, "size": len(data)}]
    with httpx.Client(base_url=server_url, timeout=120) as http:
        plan = http.post("/api/v1/adapters/acme/a/uploads", json={"files": files}).json()
        url = plan["upload_urls"].get(sha)
        if url:
            assert httpx.put(url, content=data, timeout=60).status_code == 200
        else:
            assert http.put(f"/api/v1/blobs/{sha}", content=data).status_code == 201
        before = catalog_state(runtime)

        done = threading.Event()
        health: list[tuple[int, float]] = []

        def poll_health() -> None:
            with httpx.Client(base_url=server_url, timeout=60) as probe:
                while True:
                    t0 = time.monotonic()
                    status = probe.get("/healthz").status_code
                    health.append((status, time.monotonic() - t0))
                    if done.is_set():
                        return

        poller = threading.Thread(target=poll_health)
        poller.start()
        try:
            resp = http.post("/api/v1/adapters/acme/a/versions", json={"files": files})
        finally:
            done.set()
            poller.join(timeout=120)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_adapter"
    assert "integer over 20 digits" in resp.json()["error"]["message"]
    # No version, file or event; on S3 the staged bytes were verified into their blob key
    # before the header was read, and stay for gc like any upload never committed.
    assert catalog_state(runtime)["rows"] == before["rows"]
    assert health and all(status == 200 for status, _ in health)
    # Not a benchmark: a generous bound that only a frozen event loop (18 s before) can miss.
    assert max(seconds for _, seconds in health) < 5, health
