"""The metadata routes, read by huggingface_hub's own HfApi against a live server."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import httpx
from huggingface_hub import HfApi
from huggingface_hub.hf_api import RepoFile, RepoFolder

from registry.client.local import LocalClient
from registry.domain import VersionInfo
from registry.runtime import Runtime
from tests.hf.conftest import REPO


def test_model_info_names_each_revision(
    hub: str, runtime: Runtime, voice: list[VersionInfo]
) -> None:
    v1, v2 = voice
    local = LocalClient(runtime)
    local.promote(f"{REPO}:2", to="production")
    local.set_alias(REPO, "champion", 1)
    api = HfApi(endpoint=hub)
    info = api.model_info(REPO, files_metadata=True)
    assert info.id == REPO and info.sha == v2.content_id and info.private is False
    assert info.card_data is not None and info.card_data.base_model == "tiny-llama"
    by_name = {s.rfilename: s for s in info.siblings or []}
    assert set(by_name) == {f.path for f in v2.files}
    for f in v2.files:
        assert by_name[f.path].size == f.size
        lfs = by_name[f.path].lfs
        assert lfs is not None and lfs.sha256 == f.sha256
    for rev, expected in [
        ("main", v2), ("v1", v1), ("1", v1), (v1.content_id, v1),
        ("production", v2), ("champion", v1),
    ]:  # fmt: skip
        assert api.model_info(REPO, revision=rev).sha == expected.content_id
    assert api.repo_info(REPO, revision="v2").sha == v2.content_id


def test_tree_lists_files_with_lfs_metadata(hub: str, voice: list[VersionInfo]) -> None:
    v1 = voice[0]
    api = HfApi(endpoint=hub)
    assert sorted(api.list_repo_files(REPO, revision="v1")) == sorted(f.path for f in v1.files)
    entries = list(api.list_repo_tree(REPO, revision="v1", recursive=True, expand=True))
    assert all(isinstance(e, RepoFile) for e in entries)
    for e in entries:
        assert isinstance(e, RepoFile) and e.lfs is not None and e.last_commit is not None
        f = next(f for f in v1.files if f.path == e.path)
        assert (e.size, e.lfs.sha256, e.last_commit.oid) == (f.size, f.sha256, v1.content_id)
    infos = api.get_paths_info(REPO, ["adapter_config.json", "missing.txt"], revision="v1")
    assert [i.path for i in infos] == ["adapter_config.json"]


def test_tree_folders_and_pagination(
    hub: str, runtime: Runtime, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "nested"
    shutil.copytree(adapter_library["v1"], folder)
    for i in range(5):
        (folder / "notes" / "deep").mkdir(parents=True, exist_ok=True)
        (folder / "notes" / f"n{i}.txt").write_text(f"note {i}")
    (folder / "notes" / "deep" / "x.txt").write_text("x")
    v = LocalClient(runtime).push(folder, REPO, base="tiny-llama").version

    api = HfApi(endpoint=hub)
    top = list(api.list_repo_tree(REPO))
    assert [e.path for e in top if isinstance(e, RepoFolder)] == ["notes"]
    under = list(api.list_repo_tree(REPO, path_in_repo="notes"))
    assert {e.path for e in under} == {"notes/deep"} | {f"notes/n{i}.txt" for i in range(5)}
    assert sorted(api.list_repo_files(REPO)) == sorted(f.path for f in v.files)

    # Pages of 2 follow Link headers pinned to the commit, and add up to the whole tree.
    url = f"{hub}/api/models/{REPO}/tree/main/notes"
    seen: list[str] = []
    page = httpx.get(url, params={"limit": 2})
    while True:
        assert page.status_code == 200
        seen += [e["path"] for e in page.json()]
        if "next" not in page.links:
            break
        assert f"/tree/{v.content_id}/notes" in page.links["next"]["url"]
        page = httpx.get(page.links["next"]["url"])
    assert sorted(seen) == sorted(e.path for e in under)
    missing = httpx.get(f"{hub}/api/models/{REPO}/tree/main/nowhere")
    assert missing.status_code == 404 and missing.headers["x-error-code"] == "EntryNotFound"


def test_resolve_headers_match_the_hub(hub: str, voice: list[VersionInfo]) -> None:
    v1 = voice[0]
    f = next(f for f in v1.files if f.path == "adapter_model.safetensors")
    url = f"{hub}/{REPO}/resolve/v1/{f.path}"
    head = httpx.head(url, timeout=30)
    if head.status_code == 302:  # S3: the redirect carries the metadata
        assert head.headers["location"].startswith("http")
    else:
        assert head.status_code == 200 and head.headers["content-length"] == str(f.size)
    assert head.headers["x-repo-commit"] == v1.content_id
    assert head.headers["etag"] == head.headers["x-linked-etag"] == f'"{f.sha256}"'
    assert head.headers["x-linked-size"] == str(f.size)
    body = httpx.get(url, follow_redirects=True, timeout=30)
    assert hashlib.sha256(body.content).hexdigest() == f.sha256
