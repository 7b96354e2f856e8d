"""The CLI: ``lorareg pull --region`` (and LORAREG_REGION), embedded and against a server;
``lorareg worker --regions-only`` refuses to start without regions."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from registry.config import Settings
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer
from tests.regions.helpers import drain, push, worker


def run(settings: Settings, regions_json: str, *args: str, **env: str) -> Result:
    base = {
        "LORAREG_HOME": str(settings.home),
        "LORAREG_DATABASE_URL": settings.effective_database_url,
        "LORAREG_STORAGE_URL": settings.effective_storage_url,
        "LORAREG_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "LORAREG_PART_SIZE": str(settings.part_size),
        "LORAREG_REGIONS": regions_json,
        "LORAREG_AUTHOR": "cli-user",
        **env,
    }
    return CliRunner().invoke(cli, list(args), env=base, catch_exceptions=False)


@pytest.mark.parametrize("where", ["embedded", "remote"])
def test_pull_from_a_region(
    where: str, runtime: Runtime, regions_json: str, adapter_dir: Path, tmp_path: Path
) -> None:
    version = push(runtime, adapter_dir)
    drain(worker(runtime))
    env = {"LORAREG_CACHE_DIR": str(tmp_path / "cache")}
    with LiveServer(create_app(runtime, background=False)) as server:
        if where == "remote":
            env["LORAREG_URL"] = server.url
        out = run(runtime.settings, regions_json, "pull", "acme/voice", "--region", "eu",
                  "-o", str(tmp_path / "a"), **env)  # fmt: skip
        assert out.exit_code == 0, out.output
        assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
            f.path for f in version.files
        )
        out = run(runtime.settings, regions_json, "pull", "acme/voice", "-o",
                  str(tmp_path / "b"), LORAREG_REGION="us", **env)  # fmt: skip
        assert out.exit_code == 0, out.output  # us has no copies: the primary serves
        # A fresh cache: the remote client learns of the unknown region from the server.
        env["LORAREG_CACHE_DIR"] = str(tmp_path / "fresh-cache")
        out = run(runtime.settings, regions_json, "pull", "acme/voice", "--region", "mars",
                  "-o", str(tmp_path / "c"), **env)  # fmt: skip
        assert out.exit_code == 1
        assert "primary, eu, us" in out.output and "Traceback" not in out.output


def test_worker_regions_only_needs_regions(settings: Settings) -> None:
    out = run(settings, "", "worker", "--regions-only")
    assert out.exit_code == 1 and "LORAREG_REGIONS" in out.output
