"""Base model sources read by the server: its folders and buckets only for admins, only
under LORAREG_BASE_ROOTS / in LORAREG_BASE_BUCKETS, refused the same way whether a path
exists or not, and never listed. Embedded use (no server) reads what its user can."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.access import create_token
from registry.client.local import LocalClient
from registry.compat.sources import check_server_source
from registry.config import Settings
from registry.errors import SourceNotAllowed
from registry.runtime import Runtime
from registry.server import create_app
from tests.compat.test_base_s3 import upload
from tests.fixtures.catalog import LiveServer, catalog_state

BUCKET = "base-models"


@pytest.fixture
def storage_backend() -> str:
    return "local"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def settings(settings: Settings, root: Path) -> Settings:
    return settings.model_copy(update={"base_roots": [root], "base_buckets": [BUCKET]})


@pytest.fixture
def server(runtime: Runtime) -> Iterator[dict[str, Any]]:
    tokens = {
        role: create_token(runtime.db, name=role, role=role, actor="t")[0]
        for role in ("maintainer", "admin")
    }
    tokens["scoped-admin"] = create_token(
        runtime.db, name="s", role="admin", actor="t", namespaces=["acme"]
    )[0]
    with LiveServer(create_app(runtime, require_auth=True, background=False)) as srv:
        yield {"url": srv.url, "tokens": tokens}


def _add(server: dict[str, Any], role: str, source: str) -> httpx.Response:
    return httpx.post(
        f"{server['url']}/api/v1/bases",
        json={"name": "tiny-llama", "source": source},
        headers={"Authorization": f"Bearer {server['tokens'][role]}"},
        timeout=60,
    )


def _refused(resp: httpx.Response) -> str:
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "source_not_allowed"
    return str(resp.json()["error"]["message"])


def test_folders_and_buckets_are_for_unscoped_admins(
    server: dict[str, Any], runtime: Runtime, root: Path, base_library: dict[str, Path]
) -> None:
    shutil.copytree(base_library["tiny"], root / "tiny")
    before = catalog_state(runtime)
    for role in ("maintainer", "scoped-admin"):
        _refused(_add(server, role, str(root / "tiny")))
        _refused(_add(server, role, f"s3://{BUCKET}/tiny"))
    assert catalog_state(runtime) == before
    created = _add(server, "admin", str(root / "tiny"))
    assert created.status_code == 201, created.text


@pytest.mark.parametrize(
    "source",
    [
        "/etc",
        "/etc/no-such-folder-7f3a",
        "file:///etc",
        "etc",
        "./models",
        "{root}/../../../etc",
        "{root}/./tiny",
        "{root}/link-to-etc",
    ],
)
def test_admin_outside_the_roots_learns_nothing(
    server: dict[str, Any], runtime: Runtime, root: Path, source: str
) -> None:
    (root / "link-to-etc").symlink_to("/etc")
    source = source.format(root=root)
    before = catalog_state(runtime)
    message = _refused(_add(server, "admin", source))
    # The same answer for a folder that exists and one that does not, and no listing.
    missing = _refused(_add(server, "admin", "/no/such/place"))
    assert message.replace(source[:300], "X") == missing.replace("/no/such/place", "X")
    for listed in ("passwd", "hostname", "os-release"):
        assert listed not in message
    assert catalog_state(runtime) == before


def test_a_folder_without_weights_is_not_listed(server: dict[str, Any], root: Path) -> None:
    (root / "notes").mkdir()
    (root / "notes" / "salaries-2026.csv").write_text("private\n")
    resp = _add(server, "admin", str(root / "notes"))
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_base_model"
    assert "salaries" not in resp.text


def test_buckets_only_when_listed(
    server: dict[str, Any],
    runtime: Runtime,
    s3_server: str,
    s3_client: Any,
    base_library: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime.settings, "s3_endpoint_url", s3_server)
    for bucket in (BUCKET, "someone-elses-bucket"):
        s3_client.create_bucket(Bucket=bucket)
        upload(s3_client, bucket, "tiny", base_library["tiny"], sha256="metadata")
    message = _refused(_add(server, "admin", "s3://someone-elses-bucket/tiny"))
    assert s3_server not in message
    resp = _add(server, "admin", f"s3://{BUCKET}/tiny")
    assert resp.status_code == 201, resp.text


def test_without_settings_a_server_reads_no_folder_but_embedded_use_does(
    runtime: Runtime, base_library: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.settings, "base_roots", [])
    monkeypatch.setattr(runtime.settings, "base_buckets", [])
    source = str(base_library["tiny"])
    with LiveServer(create_app(runtime, background=False)) as srv:  # open: every caller admin
        resp = httpx.post(
            f"{srv.url}/api/v1/bases", json={"name": "tiny-llama", "source": source}, timeout=60
        )
    _refused(resp)
    assert LocalClient(runtime).add_base("tiny-llama", source)["created"] is True


@pytest.mark.parametrize("admin", [True, False])
def test_hub_sources_are_not_server_sources(admin: bool) -> None:
    check_server_source("hf://org/model@main", admin=admin, roots=[], buckets=[])
    with pytest.raises(SourceNotAllowed):
        check_server_source("s3://b/m", admin=admin, roots=[], buckets=[])
