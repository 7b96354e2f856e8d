"""The vLLM plugin's resolver without vLLM: references to content-id folders, the
compatibility gate, the node cache's locks and eviction. The real engine is in
tests/engines/."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from registry.errors import ChecksumMismatch
from registry.integrations.vllm.cache import CacheFile, NodeCache
from registry.integrations.vllm.gate import Refused
from registry.integrations.vllm.resolver import AdapterResolver, parse_name
from tests.integrations.conftest import BOTH_DATABASES, make_resolver


def files_of(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.iterdir()
        if not p.name.startswith(".")
    }


@BOTH_DATABASES
@pytest.mark.parametrize("client_kind", ["local"], indirect=True)
def test_stage_alias_and_version_names_resolve_to_content_id_folders(
    resolver: AdapterResolver, registry: Any, adapter_library: dict[str, Path]
) -> None:
    v1, v2 = registry.show("acme/voice:1"), registry.show("acme/voice:2")
    bare = resolver.resolve("acme/voice")
    assert bare is not None and bare.version == 1
    # The folder is named by the content id: its path changes exactly when content does.
    assert bare.path.name == v1.content_id
    assert files_of(bare.path) == {f.path: f.sha256 for f in v1.files}
    weights = (bare.path / "adapter_model.safetensors").read_bytes()
    assert weights == (adapter_library["v1"] / "adapter_model.safetensors").read_bytes()

    canary = resolver.resolve("acme/voice@canary")
    pinned = resolver.resolve("acme/voice:2")
    assert canary is not None and pinned is not None
    assert canary.path == pinned.path == bare.path.parent / v2.content_id
    assert canary.movable and not pinned.movable
    # Same content, another name: the folder is reused, nothing downloaded again.
    assert pinned.fetched == 0

    registry.promote("acme/voice:2", to="production")
    again = resolver.resolve("acme/voice")
    assert again is not None and again.version == 2 and again.path == canary.path


@BOTH_DATABASES
@pytest.mark.parametrize("client_kind", ["local"], indirect=True)
def test_names_that_are_not_lorareg_references_or_name_nothing_are_left_to_others(
    resolver: AdapterResolver,
) -> None:
    for name in ("tiny-llama", "acme", "Acme/Voice", "acme/voice@", "../etc/passwd", "a/b/c"):
        assert parse_name(name) is None, name
        assert resolver.resolve(name) is None
    assert resolver.resolve("acme/nobody") is None
    assert resolver.resolve("acme/voice:9") is None
    assert resolver.resolve("acme/voice@staging") is None
    assert not any(resolver.cache.root.glob("[0-9a-f]*"))


@BOTH_DATABASES
@pytest.mark.parametrize("client_kind", ["local"], indirect=True)
def test_a_version_for_another_base_is_refused_with_the_checks_reason(
    resolver: AdapterResolver,
) -> None:
    with pytest.raises(Refused) as info:
        resolver.resolve("acme/wide:1")
    message = str(info.value)
    assert message.startswith("lorareg refuses acme/wide:1 on this engine's base")
    assert "different structure" in message  # base.structure_mismatch, the check's words
    assert "acme/wide:1" not in resolver.served
    # Refused, but verified and cached: asking again answers from the report, same reason.
    with pytest.raises(Refused, match="different structure"):
        resolver.resolve("acme/wide:1")


@pytest.mark.parametrize(("db_backend", "storage_backend"), [("postgres", "s3")], indirect=True)
@pytest.mark.parametrize("client_kind", ["remote"], indirect=True)
def test_over_http_with_presigned_s3_downloads(resolver: AdapterResolver, registry: Any) -> None:
    served = resolver.resolve("acme/voice@production")
    assert served is not None and served.fetched > 0
    assert files_of(served.path) == {f.path: f.sha256 for f in registry.show("acme/voice:1").files}
    with pytest.raises(Refused, match="different structure"):
        resolver.resolve("acme/wide:1")


# -- the node cache ---------------------------------------------------------------------


def payload(seed: int, size: int = 1000) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (size // 32)


def cid(seed: int) -> str:
    return hashlib.sha1(str(seed).encode()).hexdigest()


def one_file(data: bytes, calls: list[int] | None = None) -> list[CacheFile]:
    def chunks() -> list[bytes]:
        if calls is not None:
            calls.append(1)
        return [data[: len(data) // 2], data[len(data) // 2 :]]

    return [
        CacheFile("adapter_model.safetensors", hashlib.sha256(data).hexdigest(), len(data), chunks)
    ]


def test_concurrent_first_requests_download_once(tmp_path: Path) -> None:
    cache = NodeCache(tmp_path, max_bytes=10**6)
    calls: list[int] = []
    files = one_file(payload(1), calls)
    results: list[Any] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        results.append(cache.hold(cid(1), files))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(fetched for _, fetched in results) == [0] * 7 + [len(payload(1))]
    for holding, _ in results:
        holding.release()


def test_bytes_that_do_not_match_their_sha256_are_not_kept(tmp_path: Path) -> None:
    cache = NodeCache(tmp_path, max_bytes=10**6)
    good = one_file(payload(1))[0]
    bad = CacheFile(good.path, good.sha256, good.size, lambda: [payload(2)])
    with pytest.raises(ChecksumMismatch, match="expected"):
        cache.hold(cid(1), [bad])
    assert not (tmp_path / cid(1)).exists()
    assert not any((tmp_path / ".tmp").iterdir())
    holding, fetched = cache.hold(cid(1), [good])  # a later good download succeeds
    assert fetched == good.size
    holding.release()


def test_eviction_removes_folders_no_process_uses_oldest_use_first(tmp_path: Path) -> None:
    cache = NodeCache(tmp_path, max_bytes=2500)  # room for two 1000-byte folders
    held = [cache.hold(cid(i), one_file(payload(i)))[0] for i in range(4)]
    for i, h in enumerate(held):
        os.utime(h.folder / ".lorareg-used", (1000 + i, 1000 + i))
    assert cache.evict() == []  # all four in use: nothing may go
    held[0].release()
    held[2].release()
    assert cache.evict() == [cid(0), cid(2)]
    assert sorted(p.name for p in tmp_path.glob("[0-9a-f]*")) == sorted([cid(1), cid(3)])
    # A folder used by another process (a second vLLM on the node) is not evicted either.
    held[1].release()
    lock = tmp_path / ".locks" / cid(1)
    other = subprocess.Popen(
        [sys.executable, "-c", "import fcntl,os,sys; fd=os.open(sys.argv[1], os.O_RDWR);"
         " fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True); sys.stdin.read()", str(lock)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        cache.max_bytes = 0
        assert cache.evict() == []
    finally:
        other.communicate("")
    assert cache.evict() == [cid(1)]  # its process ended: the lock died with it
    held[3].release()


@BOTH_DATABASES
@pytest.mark.parametrize("client_kind", ["local"], indirect=True)
def test_a_replaced_version_stays_in_use_for_the_grace_period(
    registry: Any, base_library: dict[str, Path], tmp_path: Path
) -> None:
    r = make_resolver(registry, base_library["tiny"], tmp_path / "c", max_bytes=0, grace_s=3600)
    try:
        old = r.resolve("acme/voice")
        assert old is not None
        registry.promote("acme/voice:2", to="production")
        new = r.resolve("acme/voice")
        assert new is not None and new.path != old.path
        # Over budget, but both are in use: the old one serves requests still in flight.
        assert r.cache.evict() == [] and old.path.is_dir()
        r.grace_s = 0
        r.release_expired()
        assert not old.path.exists() and new.path.is_dir()
    finally:
        r.close()
