"""The ``lorareg`` fixture: the real CLI in-process, embedded or against a live server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from registry.config import Settings


@pytest.fixture
def lorareg(
    client_kind: str, settings: Settings, request: pytest.FixtureRequest, tmp_path: Path
) -> Any:
    """Run ``lorareg ARGS`` in-process with the environment a user would set."""
    env = {
        "LORAREG_HOME": str(settings.home),
        "LORAREG_DATABASE_URL": settings.effective_database_url,
        "LORAREG_STORAGE_URL": settings.effective_storage_url,
        "LORAREG_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "LORAREG_PART_SIZE": str(settings.part_size),
        "LORAREG_CACHE_DIR": str(tmp_path / "cli-cache"),
        "LORAREG_AUTHOR": "cli-user",
        "LORAREG_URL": "",
        "LORAREG_WEBHOOK_ALLOW_HOSTS": ",".join(settings.webhook_allow_hosts),
    }
    if client_kind == "remote":
        env["LORAREG_URL"] = request.getfixturevalue("server_url")
    runner = CliRunner()

    def run(*args: str) -> Result:
        clean = {k: v for k, v in env.items() if v}
        unset = {k: None for k, v in env.items() if not v}
        return runner.invoke(cli, list(args), env={**clean, **unset}, catch_exceptions=False)

    return run
