"""The single write pass: shards written front to back, hashed as written, stored as they are.

Each optimisation here would corrupt a merged version silently if it went wrong (a hash that
is not the file's, a run written twice or not at all, a blob moved in under the wrong key),
so each test compares against the slow, obvious answer: the file's bytes hashed again.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from registry.errors import ChecksumMismatch
from registry.merge.adapters import AdapterInput, load_adapters
from registry.merge.output import CopyOp, TensorJob, layout_shards
from registry.merge.plan import build_plan, read_base
from registry.storage.local import LocalBlobStore
from tests.factories import make_adapter, make_llama
from tests.merge.conftest import merge


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"chunk_bytes": 4},  # one row per chunk: many chunks between the copied runs
        {"dtype": "bfloat16"},  # a new header, every float tensor computed
    ],
    ids=["default", "row-chunks", "bf16-cast"],
)
def test_shard_hashes_are_the_hashes_of_the_files(
    options: dict[str, Any], llama_base: Path, tmp_path: Path
) -> None:
    adapter = make_adapter(
        tmp_path / "a", base=make_llama(), target_modules=["q_proj", "embed_tokens", "down_proj"]
    )
    result = merge(llama_base, [adapter], tmp_path / "out", durable=True, **options)
    assert len(result.shards) > 1  # the fixture's base is sharded: hashes are per shard
    assert set(result.shard_sha256) == set(result.shards)
    for shard in result.shards:
        assert result.shard_sha256[shard] == _sha(result.out_dir / shard), shard


def test_durable_merge_writes_the_same_bytes(llama_base: Path, tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "a", base=make_llama(), target_modules=["v_proj", "up_proj"])
    plain = merge(llama_base, [adapter], tmp_path / "plain")
    other = merge(llama_base, [adapter], tmp_path / "other", durable=True)
    assert plain.shard_sha256 == {} and set(other.shard_sha256) == set(other.shards)
    for shard in plain.shards:
        assert (plain.out_dir / shard).read_bytes() == (other.out_dir / shard).read_bytes()


def test_segments_tile_every_shard_in_file_order(llama_base: Path, tmp_path: Path) -> None:
    # The writer walks the segments front to back and hashes as it goes: they must cover
    # each shard's data exactly once, in order, with the jobs in the order they are computed.
    adapter = make_adapter(tmp_path / "a", base=make_llama(), target_modules=["k_proj", "o_proj"])
    base = read_base(llama_base)
    loaded = load_adapters([AdapterInput(adapter)])
    plans = build_plan(base, loaded, [1.0], "sum", None, same_as_base=lambda *a: True)
    layouts, copies, jobs = layout_shards(base, plans, chunk_elems=100)
    seen_jobs: list[TensorJob] = []
    seen_copies: list[CopyOp] = []
    for layout in layouts:
        pos = len(layout.header)
        for seg in layout.segments:
            if isinstance(seg, CopyOp):
                assert (seg.shard, seg.dst_off) == (layout.name, pos) and seg.length > 0
                seen_copies.append(seg)
                pos += seg.length
            else:
                assert seg.plan.shard == layout.name and seg.out_offset(0) == pos
                seen_jobs.append(seg)
                pos = seg.out_offset(seg.n_rows)
        assert pos == len(layout.header) + layout.data_size
    assert seen_jobs == jobs and seen_copies == copies
    assert jobs and copies


def test_adopt_file_moves_the_file_under_its_hash(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(3000)
    sha = hashlib.sha256(data).hexdigest()
    src = tmp_path / "shard.safetensors"
    src.write_bytes(data)
    assert store.adopt_file(sha, src) is True
    assert not src.exists()
    assert b"".join(store.iter_bytes(sha)) == data
    again = tmp_path / "again"
    again.write_bytes(data)
    assert store.adopt_file(sha, again) is False and again.exists()


def test_adopt_file_across_filesystems_copies_and_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path / "blobs")

    def cross_device(src: Any, dst: Any) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr("registry.storage.local.os.replace", cross_device)
    src = tmp_path / "shard"
    src.write_bytes(b"merged bytes")
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(ChecksumMismatch):
        store.adopt_file(wrong, src)  # the copy path hashes what it reads
    assert not store.exists(wrong)


def test_chunks_of_many_rows_write_the_bytes_of_whole_tensors(
    llama_base: Path, tmp_path: Path
) -> None:
    # The CPU chunk size is tuned for caches; any chunk of several rows must give the bytes
    # of one chunk per tensor (the low-rank product's reduction runs over r, not over rows).
    adapter = make_adapter(tmp_path / "a", base=make_llama(), target_modules=["q_proj", "up_proj"])
    whole = merge(llama_base, [adapter], tmp_path / "whole", durable=True, chunk_bytes=2**30)
    rows = merge(llama_base, [adapter], tmp_path / "rows", durable=True, chunk_bytes=4096)
    assert rows.shard_sha256 == whole.shard_sha256
