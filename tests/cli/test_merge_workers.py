"""Merges that can never run are said out loud: a server that started without PyTorch
refuses them, ``merge --wait`` with no worker alive gives up with how to start one, and
``lorareg worker`` logs what it does."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from registry.client.local import LocalClient
from registry.config import Settings
from registry.runtime import Runtime
from tests.cli.environment import cli_environment
from tests.fixtures.catalog import LiveServer, catalog_state

# Queueing and workers are catalog matters (both databases); storage is tested elsewhere.
pytestmark = pytest.mark.parametrize("storage_backend", ["local"])


@pytest.fixture
def catalog(
    runtime: Runtime, adapter_library: dict[str, Path], base_library: dict[str, Path]
) -> Runtime:
    c = LocalClient(runtime)
    c.add_base("tiny-llama", str(base_library["tiny"]))
    c.push(adapter_library["v1"], "acme/voice")
    return runtime


def _env(settings: Settings, tmp_path: Path, url: str | None = None) -> dict[str, str | None]:
    return cli_environment(settings, tmp_path / "cli-cache", url)


def run(env: dict[str, str | None], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def server_without_worker(catalog: Runtime) -> Iterator[str]:
    """A production-shape server: merges queue for `lorareg worker`s, none of which runs."""
    from registry.server import create_app

    with LiveServer(create_app(catalog)) as srv:
        yield srv.url


def test_merge_wait_without_a_worker_says_how_to_start_one(
    catalog: Runtime, server_without_worker: str, tmp_path: Path
) -> None:
    env = _env(catalog.settings, tmp_path, server_without_worker)
    r = run(env, "merge", "acme/voice:1", "--base", "tiny-llama", "--wait", "--claim-timeout", "1")
    assert r.exit_code == 1, r.output
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: job 1 is still queued after")
    assert "no merge worker has been seen ever" in last and "`lorareg worker`" in last
    assert "warning: no merge worker has been seen ever" in r.stderr  # at submission too
    assert "Traceback" not in r.output


def test_server_started_without_pytorch_refuses_merges(
    catalog: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch missing when `serve` started (no in-process worker), installed later: the
    server still cannot merge, so it refuses instead of queueing forever."""
    import registry.merge.service as merge_service
    from registry.server import create_app

    monkeypatch.setattr(merge_service, "torch_installed", lambda: False)
    app = create_app(catalog, worker=True)
    with LiveServer(app) as srv:
        monkeypatch.setattr(merge_service, "torch_installed", lambda: True)  # "installed later"
        before = catalog_state(catalog)
        r = run(_env(catalog.settings, tmp_path, srv.url), "merge", "acme/voice:1",
                "--base", "tiny-llama")  # fmt: skip
        assert r.exit_code == 1
        assert r.stderr.count("\n") == 1
        assert "started without PyTorch" in r.stderr and "restart `lorareg serve`" in r.stderr
        assert "pip install torch==2.13.0" in r.stderr  # the README's pinned command
        assert catalog_state(catalog) == before


def test_no_pytorch_refusal_gives_the_pinned_install(
    catalog: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embedded mode: the merge runs in the CLI's process, not "on this server"."""
    import registry.merge.service as merge_service

    monkeypatch.setattr(merge_service, "torch_installed", lambda: False)
    r = run(_env(catalog.settings, tmp_path), "merge", "acme/voice:1", "--base", "tiny-llama")
    assert r.exit_code == 1 and r.stderr.count("\n") == 1
    assert "pip install torch==2.13.0 && pip install 'lorareg[merge]'" in r.stderr
    assert "on this server" not in r.stderr


def test_worker_logs_claims_results_and_shutdown(
    catalog: Runtime, base_library: dict[str, Path], tmp_path: Path
) -> None:
    env = _env(catalog.settings, tmp_path)
    r = run(env, "merge", "acme/voice:1", "--base", "tiny-llama")
    assert r.exit_code == 0 and "job 1 queued" in r.stdout
    # Job 2 merges into a base whose folder is gone by the time the worker runs it.
    shutil.copytree(base_library["tiny"], tmp_path / "doomed")
    assert run(env, "base", "add", "doomed-llama", str(tmp_path / "doomed")).exit_code == 0
    r = run(env, "merge", "acme/voice:1", "--base", "doomed-llama", "--output", "acme/doomed")
    assert r.exit_code == 0 and "job 2 queued" in r.stdout, r.output
    shutil.rmtree(tmp_path / "doomed")
    proc_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "worker", "--poll-seconds", "0.1"],
        env=proc_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    # A worker that never logs the end of job 2 is killed, so the test fails, not hangs.
    guard = threading.Timer(180, proc.kill)
    guard.start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "job 2 failed" in line:
                break
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
        lines.extend(rest.splitlines(keepends=True))
    finally:
        guard.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines)
    assert proc.returncode == 0, text
    assert "waiting for jobs" in text
    assert "claimed job 1 (attempt 1): sum of acme/voice:1 into tiny-llama" in text
    assert "job 1 succeeded -> acme/voice-merged" in text
    assert "claimed job 2 (attempt 1)" in text
    assert "job 2 failed: base doomed-llama's source folder" in text
    assert "stopping" in text and text.rstrip().endswith("stopped")
    assert all(line[:4].isdigit() and "Z " in line for line in text.splitlines())
