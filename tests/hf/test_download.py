"""hf_hub_download and snapshot_download against lorareg, on every catalog and store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.file_download import DryRunFileInfo

from registry.client.local import LocalClient
from registry.domain import VersionInfo
from registry.runtime import Runtime
from tests.hf.conftest import REPO, copy_with_readme

WEIGHTS = "adapter_model.safetensors"


def _blobs(cache: Path) -> dict[str, Path]:
    folder = cache / f"models--{REPO.replace('/', '--')}" / "blobs"
    return {p.name: p for p in folder.iterdir() if p.is_file()}


def test_hf_hub_download_gets_the_version_asked_for(
    hub: str, voice: list[VersionInfo], hf_cache: Path
) -> None:
    v1, v2 = voice
    for rev, v in (("v1", v1), ("main", v2), (v1.content_id, v1)):
        path = Path(hf_hub_download(REPO, WEIGHTS, revision=rev, cache_dir=hf_cache, endpoint=hub))
        f = next(f for f in v.files if f.path == WEIGHTS)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == f.sha256
        # The snapshot is named by the commit, the blob by the sha256 ETag.
        assert path.parent.name == v.content_id and path.resolve().name == f.sha256
    ref = hf_cache / f"models--{REPO.replace('/', '--')}" / "refs" / "main"
    assert ref.read_text() == v2.content_id


def test_snapshot_download_reuses_shared_blobs(
    hub: str,
    runtime: Runtime,
    voice: list[VersionInfo],
    adapter_library: dict[str, Path],
    hf_cache: Path,
    tmp_path: Path,
) -> None:
    v1 = voice[0]
    folder = Path(snapshot_download(REPO, revision="v1", cache_dir=hf_cache, endpoint=hub))
    assert folder.name == v1.content_id
    for f in v1.files:
        assert hashlib.sha256((folder / f.path).read_bytes()).hexdigest() == f.sha256
    assert set(_blobs(hf_cache)) == {f.sha256 for f in v1.files}

    # v3 shares the config and the weights with v1; only its README differs.
    v3 = (
        LocalClient(runtime)
        .push(copy_with_readme(adapter_library["v1"], tmp_path / "v3", "# v3\n"), REPO)
        .version
    )
    shared = next(f for f in v3.files if f.path == WEIGHTS)
    before = _blobs(hf_cache)[shared.sha256].stat()
    plan = hf_hub_download(
        REPO, WEIGHTS, revision="v3", cache_dir=hf_cache, endpoint=hub, dry_run=True
    )
    assert isinstance(plan, DryRunFileInfo) and plan.is_cached and not plan.will_download

    folder3 = Path(snapshot_download(REPO, revision="main", cache_dir=hf_cache, endpoint=hub))
    assert folder3.name == v3.content_id
    assert (folder3 / "README.md").read_text() == "# v3\n"
    blobs = _blobs(hf_cache)
    assert set(blobs) == {f.sha256 for f in v1.files} | {f.sha256 for f in v3.files}
    after = blobs[shared.sha256].stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert os.path.realpath(folder3 / WEIGHTS) == os.path.realpath(folder / WEIGHTS)
