"""Bad input on the hub routes: the Hub's X-Error-Code, so clients raise the right error."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from registry.access import create_token
from registry.domain import VersionInfo
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer
from tests.hf.conftest import REPO

WEIGHTS = "adapter_model.safetensors"


def test_clients_raise_the_hub_errors(hub: str, voice: list[VersionInfo], hf_cache: Path) -> None:
    def download(repo: str, name: str, rev: str) -> object:
        return hf_hub_download(repo, name, revision=rev, cache_dir=hf_cache, endpoint=hub)

    with pytest.raises(RepositoryNotFoundError):
        download("acme/nothing", WEIGHTS, "main")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub).model_info("ACME/Upper")  # not a lorareg name: cannot exist
    with pytest.raises(RevisionNotFoundError):
        download(REPO, WEIGHTS, "v9")
    with pytest.raises(RevisionNotFoundError):
        download(REPO, WEIGHTS, "champion")  # no such alias
    with pytest.raises(RevisionNotFoundError, match="invalid revision"):
        download(REPO, WEIGHTS, "not a revision!")
    with pytest.raises(RemoteEntryNotFoundError):
        download(REPO, "pytorch_model.bin", "main")
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO, revision="v9", cache_dir=hf_cache, endpoint=hub)


WIRE_CASES = [
    ("/acme/nothing/resolve/main/x", 404, "RepoNotFound"),
    (f"/{REPO}/resolve/v9/x", 404, "RevisionNotFound"),
    (f"/{REPO}/resolve/{'0' * 40}/x", 404, "RevisionNotFound"),
    (f"/{REPO}/resolve/bad%20rev/x", 400, "RevisionNotFound"),
    (f"/{REPO}/resolve/main/missing.bin", 404, "EntryNotFound"),
    (f"/{REPO}/resolve/main/%2E%2E/%2E%2E/etc/passwd", 400, "EntryNotFound"),
    (f"/{REPO}/resolve/main/notes/%2E%2E/adapter_config.json", 400, "EntryNotFound"),
    (f"/api/models/{REPO}/revision/v9", 404, "RevisionNotFound"),
    (f"/api/models/{REPO}/tree/main/%2E%2E", 400, "EntryNotFound"),
    (f"/_export/{REPO}/resolve/v9/x", 404, "RevisionNotFound"),
]


def test_error_codes_on_the_wire(hub: str, voice: list[VersionInfo]) -> None:
    with httpx.Client(base_url=hub, timeout=30) as http:
        for path, status, code in WIRE_CASES:
            for method in ("GET", "HEAD") if "/resolve/" in path else ("GET",):
                r = http.request(method, path)
                got = (r.status_code, r.headers.get("x-error-code"))
                assert got == (status, code), (method, path, r.text)
                assert r.headers["x-error-message"]
                if method == "GET":
                    assert r.json()["error"]
        # huggingface_hub caches an absence under the commit it names (".no_exist").
        missing = http.head(f"/{REPO}/resolve/main/missing.bin")
        assert missing.headers["x-repo-commit"] == voice[1].content_id


def test_ranges(hub: str, voice: list[VersionInfo]) -> None:
    f = next(f for f in voice[0].files if f.path == WEIGHTS)
    url = f"{hub}/{REPO}/resolve/v1/{f.path}"
    whole = httpx.get(url, follow_redirects=True).content
    assert len(whole) == f.size
    part = httpx.get(url, headers={"Range": "bytes=8-23"}, follow_redirects=True)
    assert part.status_code == 206 and part.content == whole[8:24]
    tail = httpx.get(url, headers={"Range": "bytes=-16"}, follow_redirects=True)
    assert tail.status_code == 206 and tail.content == whole[-16:]
    beyond = httpx.get(url, headers={"Range": f"bytes={f.size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["x-error-code"] == "RangeNotSatisfiable"
    assert beyond.headers["content-range"] == f"bytes */{f.size}"


def test_bearer_tokens(runtime: Runtime, voice: list[VersionInfo], hf_cache: Path) -> None:
    reader, _ = create_token(runtime.db, name="serving", role="reader", actor="test")
    elsewhere, _ = create_token(
        runtime.db, name="globex", role="reader", actor="test", namespaces=["globex"]
    )
    with LiveServer(create_app(runtime, require_auth=True, background=False)) as srv:

        def download(token: str | bool) -> object:
            return hf_hub_download(REPO, WEIGHTS, cache_dir=hf_cache, endpoint=srv.url, token=token)

        with pytest.raises(HfHubHTTPError) as refused:
            download(False)
        assert refused.value.response.status_code == 401
        with pytest.raises(RepositoryNotFoundError):  # outside the token's namespaces
            download(elsewhere)
        assert Path(str(download(reader))).stat().st_size > 0


def test_a_huggingface_token_does_not_lock_clients_out_of_an_open_server(
    hub: str, runtime: Runtime, voice: list[VersionInfo], hf_cache: Path
) -> None:
    """huggingface_hub sends the user's HF_TOKEN to whatever endpoint it is given. An open
    server serves such a read as anonymous; the lorareg API still refuses the token, and
    a server that requires auth refuses it everywhere."""
    foreign = "hf_" + "x" * 34
    path = hf_hub_download(REPO, WEIGHTS, cache_dir=hf_cache, endpoint=hub, token=foreign)
    assert Path(str(path)).stat().st_size > 0
    assert HfApi(endpoint=hub, token=foreign).model_info(REPO).sha == voice[1].content_id
    refused = httpx.get(f"{hub}/api/v1/adapters", headers={"Authorization": f"Bearer {foreign}"})
    assert (refused.status_code, refused.headers["x-error-code"]) == (401, "unauthorized")
    with LiveServer(create_app(runtime, require_auth=True, background=False)) as srv:
        with pytest.raises(HfHubHTTPError) as closed:
            hf_hub_download(REPO, WEIGHTS, cache_dir=hf_cache / "2", endpoint=srv.url,
                            token=foreign)  # fmt: skip
        assert closed.value.response.status_code == 401
