"""Export mode: adapter_config.json names the canonical base model, as vLLM compares it."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download

from registry.catalog.export import (
    ExportCache,
    content_id_of_export,
    export_commit,
    export_version,
    exported_config,
)
from registry.client.local import LocalClient
from registry.domain import FileEntry, VersionInfo
from registry.runtime import Runtime
from tests.hf.conftest import REPO

BASE = "meta-llama/Llama-3.1-8B"
CONFIG = "adapter_config.json"


@pytest.fixture
def trained_elsewhere(runtime: Runtime, adapter_library: dict[str, Path]) -> VersionInfo:
    """A version whose config names the base as the training script saw it ('tiny-llama'),
    registered under its canonical name."""
    return LocalClient(runtime).push(adapter_library["v1"], REPO, base=BASE).version


def test_exported_config_is_pure_and_minimal() -> None:
    raw = json.dumps({"r": 4, "base_model_name_or_path": "/mnt/ckpt", "z": [1]}).encode()
    out = exported_config(raw, BASE)
    assert json.loads(out) == {"r": 4, "base_model_name_or_path": BASE, "z": [1]}
    assert list(json.loads(out)) == ["r", "base_model_name_or_path", "z"]  # order kept
    assert exported_config(raw, BASE) == out  # every replica computes the same bytes
    assert exported_config(out, BASE) is out  # already canonical: untouched
    assert exported_config(raw, None) is raw  # no canonical base: untouched
    cid = hashlib.sha1(b"x").hexdigest()
    assert export_commit(cid) != cid and content_id_of_export(export_commit(cid)) == cid


def test_export_cache_reads_each_config_once() -> None:
    cfg = FileEntry(path=CONFIG, sha256="a" * 64, size=60)
    weights = FileEntry(path="adapter_model.safetensors", sha256="b" * 64, size=4096)
    v = VersionInfo(
        namespace="acme", name="voice", number=1, content_id="c" * 40, base_model=BASE,
        peft_type="LORA", r=4, lora_alpha=8, target_modules=["q_proj"], config={}, size=4156,
        file_count=2, author="t", description=None, parent=None,
        created_at=datetime.now(UTC), files=[cfg, weights],
    )  # fmt: skip
    reads: list[FileEntry] = []

    def read(f: FileEntry) -> bytes:
        reads.append(f)
        return b'{"base_model_name_or_path": "tiny-llama", "r": 4}'

    cache = ExportCache()
    first = export_version(v, read, cache)
    assert export_version(v, read, cache) == first and reads == [cfg]
    assert first.commit == export_commit(v.content_id)
    assert [f.path for f in first.files] == [CONFIG, weights.path] and first.files[1] == weights
    assert (
        first.config is not None
        and first.files[0].sha256 == hashlib.sha256(first.config.data).hexdigest()
    )


def test_export_endpoint_serves_the_canonical_base(
    hub: str, trained_elsewhere: VersionInfo, hf_cache: Path
) -> None:
    v = trained_elsewhere
    export = f"{hub}/_export"
    info = HfApi(endpoint=export).model_info(REPO, files_metadata=True)
    assert info.sha == export_commit(v.content_id)
    path = Path(hf_hub_download(REPO, CONFIG, cache_dir=hf_cache, endpoint=export))
    data = path.read_bytes()
    cfg = json.loads(data)
    assert cfg["base_model_name_or_path"] == BASE  # what vLLM's resolver compares
    # The metadata describes the exported bytes, not the stored ones.
    sib = next(s for s in info.siblings or [] if s.rfilename == CONFIG)
    assert sib.size == len(data) and sib.lfs is not None
    assert sib.lfs.sha256 == hashlib.sha256(data).hexdigest() == path.resolve().name

    plain = Path(hf_hub_download(REPO, CONFIG, cache_dir=hf_cache, endpoint=hub))
    stored = json.loads(plain.read_bytes())
    assert stored["base_model_name_or_path"] == "tiny-llama"
    assert {k: x for k, x in stored.items() if k != "base_model_name_or_path"} == {
        k: x for k, x in cfg.items() if k != "base_model_name_or_path"
    }
    # Both modes in one cache: separate snapshots, one shared weights blob.
    folder = Path(snapshot_download(REPO, cache_dir=hf_cache, endpoint=export))
    assert folder.name == export_commit(v.content_id) != plain.parent.name
    weights = "adapter_model.safetensors"
    plain_weights = hf_hub_download(REPO, weights, cache_dir=hf_cache, endpoint=hub)
    assert (folder / weights).resolve() == Path(plain_weights).resolve()

    head = httpx.head(f"{export}/{REPO}/resolve/{info.sha}/{CONFIG}")
    assert head.headers["etag"] == f'"{sib.lfs.sha256}"'
    assert head.headers["content-length"] == head.headers["x-linked-size"] == str(len(data))
    part = httpx.get(f"{export}/{REPO}/resolve/main/{CONFIG}", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == data[:10]


def test_export_of_a_canonical_config_changes_nothing(hub: str, voice: list[VersionInfo]) -> None:
    v2 = voice[1]  # its config already says tiny-llama, its canonical base
    info = HfApi(endpoint=f"{hub}/_export").model_info(REPO, revision="v2")
    assert info.sha == v2.content_id
