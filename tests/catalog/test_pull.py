"""Pull: exact bytes, verified, atomic, cached."""

from __future__ import annotations

import filecmp
from pathlib import Path
from typing import Any

import pytest

from registry.errors import AlreadyExists, ChecksumMismatch, VersionNotFound
from registry.runtime import Runtime
from registry.storage.base import blob_key
from registry.storage.local import LocalBlobStore


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    names = cmp.left_list
    return (
        not cmp.left_only
        and not cmp.right_only
        and filecmp.cmpfiles(a, b, names, shallow=False)[0] == sorted(names)
    )


def test_pull_gives_exact_bytes(
    client: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    client.push(adapter_library["v1"], "acme/a")
    client.push(adapter_library["v2"], "acme/a")
    r = client.pull("acme/a:1", dest=tmp_path / "out")
    assert r.version.number == 1
    assert _same_tree(adapter_library["v1"], tmp_path / "out")
    client.pull("acme/a", dest=tmp_path / "latest")
    assert _same_tree(adapter_library["v2"], tmp_path / "latest")


def test_repeated_pull_comes_from_cache(
    client: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    client.push(adapter_library["v1"], "acme/a")
    first = client.pull("acme/a:1", dest=tmp_path / "one")
    second = client.pull("acme/a:1", dest=tmp_path / "two")
    assert first.bytes_downloaded == first.version.size
    assert second.bytes_downloaded == 0
    assert second.bytes_from_cache == second.version.size
    assert _same_tree(tmp_path / "one", tmp_path / "two")


def test_pull_refuses_non_empty_destination(
    client: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    client.push(adapter_library["v1"], "acme/a")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(AlreadyExists):
        client.pull("acme/a:1", dest=out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    client.pull("acme/a:1", dest=out, force=True)
    assert _same_tree(adapter_library["v1"], out)


def test_pull_unknown_reference(
    client: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    client.push(adapter_library["v1"], "acme/a")
    with pytest.raises(VersionNotFound):
        client.pull("acme/a:7", dest=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.glob(".out*")) == []


def test_corrupt_blob_fails_pull_and_writes_nothing(
    client: Any,
    runtime: Runtime,
    adapter_library: dict[str, Path],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    v = client.push(adapter_library["v1"], "acme/a").version
    weights = next(f for f in v.files if f.path == "adapter_model.safetensors")
    _damage_blob(runtime, weights.sha256, request)
    with pytest.raises(ChecksumMismatch):
        client.pull("acme/a:1", dest=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.glob(".out*")) == []


def _damage_blob(runtime: Runtime, sha256: str, request: pytest.FixtureRequest) -> None:
    """Flip one byte of a stored blob behind the registry's back (bit rot, a bad disk)."""
    data = bytearray(b"".join(runtime.store.iter_bytes(sha256)))
    data[len(data) // 2] ^= 0xFF
    store = runtime.store
    if isinstance(store, LocalBlobStore):
        path = store.root / blob_key(sha256)
        path.chmod(0o644)
        path.write_bytes(bytes(data))
    else:
        s3 = request.getfixturevalue("s3_client")
        key = f"{store.prefix}/{blob_key(sha256)}"  # type: ignore[attr-defined]
        s3.put_object(Bucket=store.bucket, Key=key, Body=bytes(data))  # type: ignore[attr-defined]
