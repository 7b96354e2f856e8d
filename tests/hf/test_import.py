"""`lorareg import`: one lorareg acts as the source hub, another imports from it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from registry.client.importer import import_from_hub
from registry.client.local import LocalClient
from registry.config import load_settings
from registry.domain import VersionInfo
from registry.errors import InvalidInput, NotFound
from registry.runtime import Runtime, open_runtime
from tests.hf.conftest import REPO


@pytest.fixture
def target(tmp_path: Path) -> Iterator[LocalClient]:
    """A second, embedded registry to import into."""
    rt = open_runtime(load_settings(home=tmp_path / "target", cache_dir=tmp_path / "tcache"))
    yield LocalClient(rt)
    rt.close()


def test_import_pins_the_commit_and_keeps_the_content(
    server_url: str, runtime: Runtime, voice: list[VersionInfo], target: LocalClient
) -> None:
    v1, v2 = voice
    LocalClient(runtime).promote(f"{REPO}:1", to="production")
    result = import_from_hub(target, f"hf://{REPO}@production", "team/voice", endpoint=server_url)
    got = result.push.version
    assert result.push.created and result.source == f"hf://{REPO}@{v1.content_id}"
    # The same files, so the same content id: lorareg's commit ids survive the trip.
    assert got.content_id == v1.content_id and got.base_model == "tiny-llama"
    assert got.tags["imported_from"] == result.source
    assert sorted(result.files) == sorted(f.path for f in v1.files)
    again = import_from_hub(target, f"hf://{REPO}@v1", "team/voice", endpoint=server_url)
    assert not again.push.created and again.push.version.number == 1

    latest = import_from_hub(
        target, f"hf://{REPO}", "team/voice", endpoint=server_url, exclude=["README.md"]
    )
    assert latest.push.created and latest.push.version.number == 2
    assert {f.path for f in latest.push.version.files} == {
        f.path for f in v2.files if f.path != "README.md"
    }


def test_import_refuses_what_it_cannot_find(
    server_url: str, voice: list[VersionInfo], target: LocalClient
) -> None:
    with pytest.raises(NotFound, match="no such repository"):
        import_from_hub(target, "hf://acme/nothing", "team/x", endpoint=server_url)
    with pytest.raises(NotFound, match="no such revision"):
        import_from_hub(target, f"hf://{REPO}@v9", "team/x", endpoint=server_url)
    with pytest.raises(InvalidInput):
        import_from_hub(target, f"{REPO}@v1", "team/x", endpoint=server_url)
    assert target.list_adapters() == []


def test_cli_import(server_url: str, voice: list[VersionInfo], tmp_path: Path) -> None:
    env = {"LORAREG_HOME": str(tmp_path / "cli-home"), "LORAREG_CACHE_DIR": str(tmp_path / "c")}
    args = ["import", f"hf://{REPO}@v2", "team/voice", "--endpoint", server_url]
    out = CliRunner().invoke(cli, [*args, "--json"], env=env)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["created"] and doc["version"]["content_id"] == voice[1].content_id
    again = CliRunner().invoke(cli, args, env=env)
    assert again.exit_code == 0 and again.stdout.startswith("unchanged:")
    bad = CliRunner().invoke(
        cli, ["import", "hf://acme/nothing", "team/x", "--endpoint", server_url], env=env
    )
    assert bad.exit_code == 1 and "no such repository" in bad.stderr
