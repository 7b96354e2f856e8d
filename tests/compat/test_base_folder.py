"""Base model registration from a local folder: one file or shards with an index."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

import pytest

from registry.compat import BaseModelInfo, content_hash, inspect_base, structure_hash
from registry.errors import BaseSourceNotFound, InvalidBaseModel, InvalidInput
from registry.formats.safetensors import read_header_file
from tests.compat.corpus import BASES, Library
from tests.factories import save_base


@pytest.fixture(scope="session")
def sharded_llama(library: Library) -> Path:
    """The same tiny LLaMA as library's "llama", saved as three shards with an index."""
    folder = library.root / "bases" / "llama-sharded"
    if not folder.exists():
        save_base(BASES["llama"](), folder, max_shard_size="50KB")
    return folder


def test_single_file_base_records_every_tensor_and_both_hashes(library: Library) -> None:
    folder = library.base_dir("llama")
    info = inspect_base(str(folder))

    header = read_header_file(folder / "model.safetensors")
    assert info.tensors == {n: (t.dtype, t.shape) for n, t in header.tensors.items()}
    assert info.tensors["model.layers.1.mlp.down_proj.weight"] == ("F32", (32, 64))
    assert info.architecture["model_type"] == "llama"
    assert info.vocab_size == 128
    sha = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    size = (folder / "model.safetensors").stat().st_size
    assert [tuple(f) for f in info.files] == [("model.safetensors", size, sha)]
    # Both hashes follow the documented canonical encoding.
    rows = sorted([n, d, list(s)] for n, (d, s) in info.tensors.items())
    expected = hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()
    assert info.structure_hash == expected == structure_hash(info.tensors)
    pairs = json.dumps([["model.safetensors", sha]], separators=(",", ":")).encode()
    assert info.content_hash == hashlib.sha256(pairs).hexdigest() == content_hash(info.files)


def test_sharded_base_has_the_same_structure_and_its_own_content(
    library: Library, sharded_llama: Path
) -> None:
    single = library.base("llama")
    sharded = inspect_base(str(sharded_llama))

    assert len(sharded.files) == 3
    assert [f.path for f in sharded.files] == sorted(f.path for f in sharded.files)
    assert sharded.tensors == single.tensors
    assert sharded.structure_hash == single.structure_hash
    assert sharded.content_hash not in (None, single.content_hash)


def test_another_checkpoint_of_the_same_model_differs_only_in_content(library: Library) -> None:
    a, b = library.base("llama"), library.base("llama_seed1")
    assert a.structure_hash == b.structure_hash
    assert a.content_hash != b.content_hash
    assert library.base("llama_wide").structure_hash != a.structure_hash


def test_base_info_survives_json(library: Library) -> None:
    info = library.base("llama")
    assert BaseModelInfo.from_json(json.loads(json.dumps(info.to_json()))) == info


def test_a_folder_that_does_not_exist_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(BaseSourceNotFound, match="no such folder"):
        inspect_base(str(tmp_path / "nope"))


def test_a_folder_without_safetensors_is_refused(library: Library, tmp_path: Path) -> None:
    shutil.copy(library.base_dir("llama") / "config.json", tmp_path / "config.json")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")

    with pytest.raises(InvalidBaseModel, match="holds no safetensors") as exc:
        inspect_base(str(tmp_path))
    assert "safe_serialization=True" in exc.value.message
    assert "pytorch_model.bin" not in exc.value.message  # a folder's contents are not listed


def test_a_header_over_the_cap_is_refused(library: Library, tmp_path: Path) -> None:
    # A hostile file: an 8-byte length claiming a 1 GB header, then nothing.
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 30) + b"{}")
    with pytest.raises(InvalidBaseModel, match="over the .*cap"):
        inspect_base(str(tmp_path))

    # A real header over a deliberately small cap.
    with pytest.raises(InvalidBaseModel, match="over the 256-byte cap"):
        inspect_base(str(library.base_dir("llama")), max_header_bytes=256)


def test_an_index_naming_a_missing_shard_is_refused(sharded_llama: Path, tmp_path: Path) -> None:
    folder = tmp_path / "base"
    shutil.copytree(sharded_llama, folder)
    next(iter(sorted(folder.glob("model-*.safetensors")))).unlink()

    with pytest.raises(InvalidBaseModel, match="shards that are not there"):
        inspect_base(str(folder))


def test_a_tensor_stored_twice_is_refused(library: Library, tmp_path: Path) -> None:
    src = library.base_dir("llama") / "model.safetensors"
    shutil.copy(src, tmp_path / "a.safetensors")
    shutil.copy(src, tmp_path / "b.safetensors")

    with pytest.raises(InvalidBaseModel, match="stored in both a.safetensors and b.safetensors"):
        inspect_base(str(tmp_path))


@pytest.mark.parametrize("spec", ["ftp://host/model", "hf://", "hf://a/b/c@main"])
def test_a_source_lorareg_cannot_read_is_invalid_input(spec: str) -> None:
    with pytest.raises(InvalidInput):
        inspect_base(spec)
