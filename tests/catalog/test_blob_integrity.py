"""A stored blob never changes, and fsck --deep finds every one that did (issue 12 finding 3,
issue 21 part 1), on SQLite and PostgreSQL, local store and a real S3 server (moto)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest
from huggingface_hub import hf_hub_download
from safetensors.numpy import save_file

from registry.catalog.upkeep import fsck
from registry.client.local import LocalClient
from registry.client.remote import RemoteClient
from registry.runtime import Runtime
from registry.storage.base import blob_key
from registry.storage.local import LocalBlobStore
from registry.storage.s3 import S3BlobStore

WEIGHTS = "adapter_model.safetensors"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _overwrite(runtime: Runtime, sha256: str, data: bytes) -> None:
    """Change a stored blob behind the registry's back (a disk fault, a hand edit)."""
    store = runtime.store
    if isinstance(store, LocalBlobStore):
        (store.root / blob_key(sha256)).write_bytes(data)
    else:
        s3 = cast(S3BlobStore, store)
        s3.client.put_object(Bucket=s3.bucket, Key=s3._key(sha256), Body=data)


def _big_adapter(folder: Path) -> Path:
    """Weights over one S3 part (5 MiB in the tests), so they go up as a multipart upload."""
    rng = np.random.default_rng(7)
    tensors = {}
    for layer in range(6):
        key = f"base_model.model.model.layers.{layer}.self_attn.q_proj"
        tensors[f"{key}.lora_A.weight"] = rng.standard_normal((64, 4096)).astype(np.float16)
        tensors[f"{key}.lora_B.weight"] = rng.standard_normal((4096, 64)).astype(np.float16)
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / WEIGHTS))
    (folder / "adapter_config.json").write_text(
        '{"peft_type": "LORA", "r": 64, "lora_alpha": 16, "target_modules": ["q_proj"]}'
    )
    return folder


@pytest.mark.parametrize("storage_backend", ["s3"])
def test_a_stale_upload_url_never_rewrites_a_registered_blob(
    runtime: Runtime, server_url: str, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    folder = adapter_library["v1"]
    data = (folder / WEIGHTS).read_bytes()
    entry = {"path": WEIGHTS, "sha256": _sha(data), "size": len(data)}
    # Someone asks for an upload URL of these weights and keeps it.
    plan = httpx.post(f"{server_url}/api/v1/adapters/eve/x/uploads", json={"files": [entry]})
    stale = plan.json()["upload_urls"][entry["sha256"]]
    assert stale is not None
    owner = RemoteClient(server_url, cache_dir=tmp_path / "owner-cache")
    try:
        owner.push(folder, "acme/a")
    finally:
        owner.close()
    poison = bytes(b ^ 0xFF for b in data)  # same size, other bytes
    assert httpx.put(stale, content=poison).status_code == 200

    doc = httpx.get(f"{server_url}/api/v1/resolve/acme/a").json()
    served = next(f for f in doc["files"] if f["path"] == WEIGHTS)
    assert httpx.get(served["url"], follow_redirects=True).content == data
    fresh = RemoteClient(server_url, cache_dir=tmp_path / "fresh-cache")
    try:
        out = Path(fresh.pull("acme/a", dest=tmp_path / "pulled").path)
    finally:
        fresh.close()
    assert (out / WEIGHTS).read_bytes() == data
    hub = hf_hub_download("acme/a", WEIGHTS, cache_dir=tmp_path / "hf", endpoint=server_url)
    assert Path(hub).read_bytes() == data
    assert fsck(runtime.db, runtime.store, deep=True).ok


def test_fsck_deep_lists_every_blob_whose_bytes_do_not_match_its_name(
    runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    c = LocalClient(runtime)
    a = c.push(adapter_library["v1"], "acme/a").version
    b = c.push(adapter_library["r8"], "acme/b").version
    weights_a = next(f for f in a.files if f.path == WEIGHTS)
    config_b = next(f for f in b.files if f.path == "adapter_config.json")
    assert weights_a.sha256 not in {f.sha256 for f in b.files}
    for f in (weights_a, config_b):
        good = b"".join(runtime.store.iter_bytes(f.sha256))
        _overwrite(runtime, f.sha256, bytes(x ^ 1 for x in good))  # same size
    assert fsck(runtime.db, runtime.store).ok  # sizes match: only a deep check can tell
    report = fsck(runtime.db, runtime.store, deep=True)
    assert not report.ok
    assert report.corrupt == sorted([weights_a.sha256, config_b.sha256])
    users = {d.sha256: d.versions for d in report.damaged}
    assert users == {weights_a.sha256: ["acme/a:1"], config_b.sha256: ["acme/b:1"]}

    repaired = fsck(runtime.db, runtime.store, deep=True, repair=True).repaired
    assert len(repaired) == 2
    assert any(weights_a.sha256 in line and "lorareg push DIR acme/a" in line for line in repaired)
    c.push(adapter_library["v1"], "acme/a")  # same files again: the blob comes back
    c.push(adapter_library["r8"], "acme/b")
    assert fsck(runtime.db, runtime.store, deep=True).ok


@pytest.mark.parametrize("storage_backend", ["s3"])
def test_fsck_deep_does_not_stop_at_an_unreadable_blob(
    runtime: Runtime, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    """An object the S3 server cannot serve (here moto after a self-copy without a checksum
    algorithm: every GET fails checksum validation) is listed, and so is the next one."""
    c = LocalClient(runtime)
    big = c.push(_big_adapter(tmp_path / "big"), "acme/big").version
    small = c.push(adapter_library["v1"], "acme/a").version
    s3 = cast(S3BlobStore, runtime.store)
    weights = next(f for f in big.files if f.path == WEIGHTS)
    key = s3._key(weights.sha256)
    s3.client.copy_object(
        Bucket=s3.bucket,
        Key=key,
        CopySource={"Bucket": s3.bucket, "Key": key},
        MetadataDirective="REPLACE",
    )
    card = next(f for f in small.files if f.path == "README.md")
    good = b"".join(s3.iter_bytes(card.sha256))
    _overwrite(runtime, card.sha256, bytes(x ^ 1 for x in good))
    report = fsck(runtime.db, runtime.store, deep=True)
    assert report.unreadable == [weights.sha256] and report.corrupt == [card.sha256]
    assert report.damaged_versions == ["acme/a:1", "acme/big:1"]
    [unreadable] = [d for d in report.damaged if d.problem == "unreadable"]
    assert unreadable.versions == ["acme/big:1"] and unreadable.paths == [WEIGHTS]


def test_reusing_an_orphan_blob_keeps_every_version_pullable(
    runtime: Runtime, client: Any, client_kind: str, tmp_path: Path
) -> None:
    """A killed push left its weights stored but no version; the re-run reuses them."""
    folder = _big_adapter(tmp_path / "big")
    sha = _sha((folder / WEIGHTS).read_bytes())
    runtime.store.put_file(sha, folder / WEIGHTS)  # the orphan, as the killed push left it
    pushed = client.push(folder, "acme/big")
    if client_kind == "local":
        assert pushed.blobs_reused == 1
    if client_kind == "local":
        fresh: Any = LocalClient(runtime)
        fresh.cache.root = tmp_path / "fresh-cache" / "blobs"
    else:
        fresh = RemoteClient(str(client.base), cache_dir=tmp_path / "fresh-cache")
    try:
        out = Path(fresh.pull("acme/big", dest=tmp_path / "pulled").path)
    finally:
        if client_kind == "remote":
            fresh.close()
    assert _sha((out / WEIGHTS).read_bytes()) == sha
    assert fsck(runtime.db, runtime.store, deep=True).ok
