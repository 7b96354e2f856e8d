"""``lorareg sync --engine-url`` at its edges (the switch itself runs against a real vLLM
in tests/engines/): a bad URL is refused before anything is written, and an engine that
cannot be reached never stops the sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import cli
from registry.client.local import LocalClient
from registry.config import Settings
from registry.runtime import Runtime
from tests.fixtures.s3 import free_port
from tests.integrations.conftest import BASE, BOTH_DATABASES


def run(settings: Settings, *args: str) -> Any:
    env: dict[str, str | None] = {
        "LORAREG_HOME": str(settings.home),
        "LORAREG_DATABASE_URL": settings.effective_database_url,
        "LORAREG_STORAGE_URL": settings.effective_storage_url,
        "LORAREG_URL": None,
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def voice(runtime: Runtime, adapter_library: dict[str, Path]) -> LocalClient:
    local = LocalClient(runtime)
    local.push(adapter_library["v1"], "acme/voice", base=BASE)
    local.promote("acme/voice:1", to="production")
    return local


@BOTH_DATABASES
def test_a_bad_engine_url_is_refused_before_anything_is_written(
    settings: Settings, voice: LocalClient, tmp_path: Path
) -> None:
    dest = tmp_path / "node"
    for bad in ("localhost:8000", "ftp://host/", "http://", "http://a b"):
        r = run(settings, "sync", "--to", str(dest), "--base", BASE, "--engine-url", bad)
        assert r.exit_code == 2, r.output
        assert "--engine-url" in r.stderr and "is not an http:// or https:// URL" in r.stderr
    assert not dest.exists()


@BOTH_DATABASES
def test_an_unreachable_engine_does_not_stop_the_sync(
    settings: Settings, voice: LocalClient, tmp_path: Path
) -> None:
    dest = tmp_path / "node"
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    r = run(settings, "sync", "--to", str(dest), "--base", BASE, "--engine-url", url)
    assert r.exit_code == 0, r.output
    assert (dest / "acme" / "voice" / "adapter_config.json").is_file()
    said = [line for line in r.stderr.splitlines() if f"cannot reach the engine at {url}" in line]
    assert len(said) == 1, r.stderr  # once, not once per attempt
