"""Bad input: one clear error, and the catalog and storage stay exactly as they were."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file, save_file

from registry import errors
from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"


def _edit_config(**changes: Any) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        doc = json.loads((folder / CONFIG).read_text())
        for k, v in changes.items():
            if v is _DROP:
                doc.pop(k, None)
            else:
                doc[k] = v
        (folder / CONFIG).write_text(json.dumps(doc))

    return apply


_DROP = object()


def _drop_lora_b(folder: Path) -> None:
    tensors = load_file(folder / WEIGHTS)
    victim = sorted(k for k in tensors if "lora_B" in k)[0]
    del tensors[victim]
    save_file(tensors, folder / WEIGHTS)


def _header_claims(n: int) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        raw = (folder / WEIGHTS).read_bytes()
        (folder / WEIGHTS).write_bytes(struct.pack("<Q", n) + raw[8:])

    return apply


def _symlink_out(folder: Path) -> None:
    outside = folder.parent / "secret.txt"
    outside.write_text("not part of the adapter")
    os.symlink(outside, folder / "notes.txt")


CASES: dict[str, tuple[Callable[[Path], object], type[errors.LoraregError], str]] = {
    "missing config": (lambda d: (d / CONFIG).unlink(), errors.InvalidAdapter, CONFIG),
    "missing weights": (lambda d: (d / WEIGHTS).unlink(), errors.InvalidAdapter, WEIGHTS),
    "invalid json": (
        lambda d: (d / CONFIG).write_text("{not json"),
        errors.InvalidAdapter,
        "not valid JSON",
    ),
    "r missing": (_edit_config(r=_DROP), errors.InvalidAdapter, "r"),
    "r wrong type": (_edit_config(r="4"), errors.InvalidAdapter, "r must be a number"),
    "alpha missing": (_edit_config(lora_alpha=_DROP), errors.InvalidAdapter, "lora_alpha"),
    "alpha wrong type": (_edit_config(lora_alpha=[8]), errors.InvalidAdapter, "lora_alpha"),
    "targets missing": (
        _edit_config(target_modules=_DROP),
        errors.InvalidAdapter,
        "target_modules",
    ),
    "targets wrong type": (_edit_config(target_modules=7), errors.InvalidAdapter, "target_modules"),
    "rank disagrees with shapes": (_edit_config(r=8), errors.InvalidAdapter, "rank"),
    "lora_A without lora_B": (_drop_lora_b, errors.InvalidAdapter, "has no lora_B"),
    "header beyond file": (_header_claims(10_000_000), errors.InvalidAdapter, "past the end"),
    "header over cap": (_header_claims(10**12), errors.InvalidAdapter, "cap"),
    "pickle weights": (
        lambda d: (d / "adapter_model.bin").write_bytes(b"\x80\x04pickle"),
        errors.UnsafeFormat,
        "safetensors",
    ),
    "symlink out of folder": (_symlink_out, errors.UnsafePath, "symlink"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_adapter_is_refused_and_nothing_changes(
    case: str, client: Any, runtime: Runtime, adapter_dir: Path, adapter_library: dict[str, Path]
) -> None:
    client.push(adapter_library["v2"], "acme/a")  # something already there must stay intact
    mutate, error, words = CASES[case]
    mutate(adapter_dir)
    before = catalog_state(runtime)
    with pytest.raises(error) as info:
        client.push(adapter_dir, "acme/a")
    assert words in str(info.value)
    assert "\n" not in str(info.value)
    assert catalog_state(runtime) == before


@pytest.mark.parametrize(
    "repo", ["Acme/a", "acme", "acme/a/b", "acme/..", "-acme/a", "acme/" + "x" * 65, "acme/a b"]
)
def test_invalid_names_are_refused(
    client: Any, runtime: Runtime, adapter_dir: Path, repo: str
) -> None:
    before = catalog_state(runtime)
    with pytest.raises((errors.InvalidName, errors.InvalidReference)):
        client.push(adapter_dir, repo)
    assert catalog_state(runtime) == before


@pytest.mark.parametrize("ref", ["acme/a:0", "acme/a:x", "acme/a@Prod!", "nope"])
def test_invalid_references(client: Any, ref: str) -> None:
    with pytest.raises(errors.InvalidInput):
        client.show(ref)


def test_folder_that_does_not_exist(client: Any, runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidAdapter, match="no such folder"):
        client.push(tmp_path / "missing", "acme/a")
