"""``lorareg sync`` as users run it: one-shot and --status in-process, --follow as a real
process that is killed (SIGKILL) and restarted, then stopped (SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from registry.client.local import LocalClient
from registry.client.remote import RemoteClient
from registry.config import Settings
from registry.runtime import Runtime
from tests.sync.conftest import BASE, LOCAL_STORE, RestartableServer, synced_number, wait_for

pytestmark = LOCAL_STORE


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "LORAREG_HOME": str(settings.home),
        "LORAREG_DATABASE_URL": settings.effective_database_url,
        "LORAREG_STORAGE_URL": settings.effective_storage_url,
        "LORAREG_AUTHOR": "cli-user",
        **extra,
    }


@pytest.fixture
def lorareg(settings: Settings) -> Any:
    runner = CliRunner()

    def run(*args: str) -> Result:
        env: dict[str, str | None] = {**_env(settings), "LORAREG_URL": None}
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return run


@pytest.fixture
def voice(runtime: Runtime, adapter_library: dict[str, Path]) -> LocalClient:
    local = LocalClient(runtime)
    for key in ("v1", "v2", "r8"):
        local.push(adapter_library[key], "acme/voice", base=BASE)
    local.promote("acme/voice:1", to="production")
    return local


def test_sync_once_and_status(lorareg: Any, voice: LocalClient, tmp_path: Path) -> None:
    dest = tmp_path / "node"
    r = lorareg("sync", "--to", str(dest), "--base", BASE)
    assert r.exit_code == 0, r.output
    assert "acme/voice: added v1 (production" in r.stderr
    assert synced_number(dest, "acme/voice") == 1
    r = lorareg("sync", "--status", str(dest))
    assert r.exit_code == 0, r.output
    assert "production for tiny-llama (all namespaces)" in r.stdout
    assert "no sync process running; last event" in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.startswith("acme/voice"))
    assert row.split()[:2] == ["acme/voice", "v1"] and row.endswith("current")
    voice.set_alias("acme/voice", "canary-b", 3)
    canary = tmp_path / "canary"
    r = lorareg("sync", "--to", str(canary), "--base", BASE, "--alias", "canary-b", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ref"] == "canary-b" and doc["adapters"][0]["version"] == 3


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "give --to DIR and --base NAME"),
        (("--to", "X", "--base", BASE, "--stage", "staging", "--alias", "a"), 2, "not both"),
        (("--status", "X", "--to", "Y"), 2, "give it alone"),
        (("--to", "X", "--base", BASE, "--alias", "Bad Alias"), 1, "invalid alias"),
        (("--to", "X", "--base", "not a base"), 1, "invalid base model name"),
        (("--status", "never-synced"), 1, "was never synced"),
    ],
)
def test_refusals(
    lorareg: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    r = lorareg("sync", *args)
    assert r.exit_code == code, r.output
    assert message in r.stderr


@pytest.fixture
def server(runtime: Runtime) -> Iterator[RestartableServer]:
    srv = RestartableServer(runtime).start()
    yield srv
    srv.stop()


def test_follow_process_killed_and_restarted(
    server: RestartableServer, settings: Settings, voice: LocalClient, tmp_path: Path
) -> None:
    dest = tmp_path / "node"
    env = {**os.environ, **_env(settings, LORAREG_URL=server.url)}
    lorareg_bin = str(Path(sys.executable).with_name("lorareg"))
    argv = [lorareg_bin, "sync", "--to", str(dest), "--base", BASE, "--follow"]

    def start(log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as err:
            return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)

    admin = RemoteClient(server.url, actor="tester")
    first = start(tmp_path / "first.log")
    try:
        wait_for(lambda: synced_number(dest, "acme/voice") == 1, timeout=30, what="first sync")
        admin.promote("acme/voice:2", to="production")
        wait_for(lambda: synced_number(dest, "acme/voice") == 2, timeout=1.0, what="v2")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        admin.promote("acme/voice:3", to="production", reason="while sync is dead")
        second = start(tmp_path / "second.log")
        try:
            wait_for(lambda: synced_number(dest, "acme/voice") == 3, timeout=30, what="v3")
            admin.promote("acme/voice:1", to="production")
            wait_for(lambda: synced_number(dest, "acme/voice") == 1, timeout=1.0, what="v1")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=10) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        admin.close()
    log = (tmp_path / "second.log").read_text()
    assert "acme/voice: v2 -> v3" in log and "acme/voice: v3 -> v1" in log
    assert " stopping" in log
