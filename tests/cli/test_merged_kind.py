"""A merged model is full weights, and ``show`` and the dashboard say so: no ``r=0
alpha=0``, no "not checked yet" with a check command that cannot work on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.client.local import LocalClient
from registry.runtime import Runtime

pytestmark = pytest.mark.parametrize("storage_backend", ["local"])


@pytest.fixture
def merged(
    runtime: Runtime, adapter_library: dict[str, Path], base_library: dict[str, Path]
) -> str:
    c = LocalClient(runtime)
    c.add_base("tiny-llama", str(base_library["tiny"]))
    c.push(adapter_library["v1"], "acme/voice")
    c.push(adapter_library["v2"], "acme/product")
    job = c.merge(["acme/voice:1", "acme/product:1"], base="tiny-llama", weights=[0.7, 0.3])
    done = c.wait_job(job["job"]["id"])
    assert done["state"] == "succeeded", done
    return str(done["output"])


def test_show_of_a_merged_model(lorareg: Any, merged: str) -> None:
    r = lorareg("show", merged)
    assert r.exit_code == 0, r.output
    assert "kind:        merged model (full weights)" in r.stdout
    assert "merged from: sum of acme/voice:1 x0.7, acme/product:1 x0.3 (job 1)" in r.stdout
    assert "lora:" not in r.stdout and "r=0" not in r.stdout


def test_dashboard_pages_of_a_merged_model(merged: str, server_url: str) -> None:
    page = httpx.get(f"{server_url}/ui/acme/voice-merged/v1")
    assert page.status_code == 200
    assert "merged model (full weights)" in page.text
    assert "r=0" not in page.text and "Not checked yet" not in page.text
    adapter = httpx.get(f"{server_url}/ui/acme/voice-merged")
    assert adapter.status_code == 200
    assert "lorareg check" not in adapter.text and "full weights" in adapter.text
