"""Commands the dashboard tells people to run do run: each ``<code>lorareg ...</code>`` on
the sign-in page and the 401 page, with NAME filled in, succeeds on the real CLI."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from cli.main import cli
from registry.client.local import LocalClient
from registry.config import Settings
from registry.runtime import Runtime
from registry.server import create_app

pytestmark = pytest.mark.parametrize("storage_backend", ["local"])


@pytest.fixture
def locked(runtime: Runtime, catalog: LocalClient) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, require_auth=True, background=False)) as c:
        yield c


def commands_in(page: str) -> list[str]:
    return [html.unescape(c) for c in re.findall(r"<code>(lorareg [^<]+)</code>", page)]


def test_token_commands_on_the_sign_in_and_401_pages_work(
    locked: TestClient, settings: Settings
) -> None:
    login = locked.get("/ui/-/login")
    refused = locked.get("/ui/")
    assert refused.status_code == 401
    shown = commands_in(login.text) + commands_in(refused.text)
    assert len(shown) >= 2, shown
    env = {
        "LORAREG_HOME": str(settings.home),
        "LORAREG_DATABASE_URL": settings.effective_database_url,
        "LORAREG_STORAGE_URL": settings.effective_storage_url,
        "LORAREG_URL": None,
    }
    for n, command in enumerate(shown):
        args = command.replace("NAME", f"from-page-{n}").split()[1:]
        r = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        assert r.exit_code == 0, (command, r.output)
