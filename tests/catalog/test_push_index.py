"""The push's hash index: an unchanged file is not read again, a changed one always is.

``RACY_S`` keeps files modified within two seconds of their hashing out of the index;
these tests pass ``racy_s=0`` where they need a fresh file remembered, and check the
guard itself separately.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from registry.catalog import hash_index
from registry.catalog.hash_index import NAME, HashIndex
from registry.catalog.transfer import prepare_push
from registry.client.local import LocalClient
from registry.runtime import Runtime

WEIGHTS = "adapter_model.safetensors"


class CountingHash:
    """sha256 of a file, counting the files it had to read."""

    def __init__(self) -> None:
        self.read: list[Path] = []

    def __call__(self, path: Path) -> str:
        self.read.append(path)
        return hashlib.sha256(path.read_bytes()).hexdigest()


def truth(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 1000)
    hasher = CountingHash()
    index = HashIndex(tmp_path / "cache" / NAME, racy_s=0)
    assert index.sha256(f, hasher) == (truth(f), 1000)
    index.save()
    again = HashIndex(tmp_path / "cache" / NAME, racy_s=0)  # as the next push loads it
    assert again.sha256(f, hasher) == (truth(f), 1000)
    assert hasher.read == [f]
    assert oct((tmp_path / "cache" / NAME).stat().st_mode & 0o777) == "0o600"


def test_same_size_and_mtime_but_new_bytes_is_hashed_again(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 1000)
    st = f.stat()
    hasher = CountingHash()
    index = HashIndex(tmp_path / NAME, racy_s=0)
    old = index.sha256(f, hasher)[0]
    # Same length, and the mtime put back as `touch -d` or a careless copy would: only
    # the ctime (which nobody can set) tells.
    with open(f, "r+b") as fh:
        fh.write(b"b")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    new = index.sha256(f, hasher)[0]
    assert new == truth(f) != old and hasher.read == [f, f]


def test_a_replaced_file_is_hashed_again(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 1000)
    hasher = CountingHash()
    index = HashIndex(tmp_path / NAME, racy_s=0)
    index.sha256(f, hasher)
    other = tmp_path / "other.bin"
    other.write_bytes(b"c" * 1000)
    os.replace(other, f)  # a new inode at the same path
    assert index.sha256(f, hasher)[0] == truth(f) and len(hasher.read) == 2


def test_racily_new_files_are_not_remembered(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 1000)
    hasher = CountingHash()
    index = HashIndex(tmp_path / NAME)  # the default guard: written just now
    index.sha256(f, hasher)
    index.sha256(f, hasher)
    assert len(hasher.read) == 2


def test_a_damaged_index_is_ignored(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 10)
    (tmp_path / NAME).write_text('{"format": 1, "entries": {"' + str(f) + '": [[1], 5]}}')
    assert HashIndex(tmp_path / NAME).sha256(f, CountingHash()) == (truth(f), 10)
    (tmp_path / NAME).write_text("not json")
    assert HashIndex(tmp_path / NAME).sha256(f, CountingHash()) == (truth(f), 10)


def test_repush_after_an_in_place_change_stores_the_new_bytes(
    runtime: Runtime,
    adapter_library: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hash_index, "RACY_S", 0.0)  # remember the freshly copied files
    folder = tmp_path / "adapter"
    shutil.copytree(adapter_library["v1"], folder)
    client = LocalClient(runtime)
    first = client.push(folder, "acme/indexed").version
    unchanged = client.push(folder, "acme/indexed")
    assert not unchanged.created and unchanged.bytes_uploaded == 0
    # New weights of the same size, mtime restored: the push must store them.
    weights = folder / WEIGHTS
    st = weights.stat()
    shutil.copyfile(adapter_library["v2"] / WEIGHTS, weights)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert weights.stat().st_size == st.st_size
    second = client.push(folder, "acme/indexed").version
    assert second.number == 2 and second.content_id != first.content_id
    stored = {f.path: f.sha256 for f in second.files}
    assert stored[WEIGHTS] == truth(adapter_library["v2"] / WEIGHTS)


def test_prepare_push_agrees_with_and_without_the_index(
    adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    plain = prepare_push(adapter_library["v1"], max_header_bytes=1 << 20)
    index = HashIndex(tmp_path / NAME, racy_s=0)
    with_index = [prepare_push(adapter_library["v1"], max_header_bytes=1 << 20, index=index)
                  for _ in range(2)]  # fmt: skip
    assert plain.files == with_index[0].files == with_index[1].files
