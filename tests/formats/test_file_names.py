"""File names of an adapter: only canonical names, no two that are one file on some disk.

A name that aliases another (``./x``, ``a//b``, ``adapter_model.safetensors/``) would be
stored raw while pull and sync write the normalised name, so an unchecked file could land
on disk under a trusted one. Refused in the format layer, through both clients and on the
HTTP commit route with a hand-made body.
"""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry import errors
from registry.client.local import LocalClient
from registry.formats import adapter
from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state

ALIASES = [
    "adapter_model.safetensors/",
    "./x",
    "a//b",
    "a/./b",
    "x/../y",
    "a/.",
    "a\\b",
    "/etc/passwd",
    "x.",
    "x ",
    "a /b",
    " x",
    "dir./x",
    "a\x00b",
    "a\nb",
    "a\x7fb",
    "evil\u202etxt.exe",  # right-to-left override
    "a\u200bb",  # zero-width space
    "x" * 513,
    "/".join(["d"] * 17),
    "n" * 256,
    "",
    ".",
    "..",
    unicodedata.normalize("NFD", "café.md"),
]


@pytest.mark.parametrize("name", ALIASES, ids=[repr(a)[:40] for a in ALIASES])
def test_non_canonical_names_are_refused(name: str) -> None:
    with pytest.raises(errors.UnsafePath) as info:
        adapter.check_relative_path(name)
    assert info.value.code == "unsafe_path"
    assert len(info.value.message) < 400  # one short line, whatever the name's length


@pytest.mark.parametrize(
    "name",
    ["adapter_model.safetensors", "a/b/c.json", "café.md", "x" * 255, "/".join(["d"] * 16), "a b"],
)
def test_canonical_names_pass_unchanged(name: str) -> None:
    assert adapter.check_relative_path(name) == name


@pytest.mark.parametrize(
    "names",
    [
        ["README.md", "readme.md"],
        ["docs/Notes.md", "DOCS/notes.md"],
        ["Straße.md", "STRASSE.md"],  # full case folding, not lower()
        ["x", "x"],
    ],
)
def test_names_equal_after_folding_are_refused(names: list[str]) -> None:
    with pytest.raises(errors.DuplicatePath) as info:
        adapter.check_file_names(names)
    assert info.value.code == "duplicate_path"
    assert names[0] in info.value.message


def test_a_duplicate_through_the_client_is_refused_and_nothing_stored(
    client: Any, runtime: Runtime, adapter_dir: Path
) -> None:
    (adapter_dir / "readme.md").write_text("a second readme\n")
    (adapter_dir / "README.md").write_text("the readme\n")
    before = catalog_state(runtime)
    with pytest.raises(errors.DuplicatePath, match="README.md"):
        client.push(adapter_dir, "acme/a", base="tiny-llama")
    assert catalog_state(runtime) == before


def test_an_aliasing_name_through_the_client_is_refused(
    client: Any, runtime: Runtime, adapter_dir: Path
) -> None:
    (adapter_dir / "notes.").write_text("Windows would write this as 'notes'\n")
    before = catalog_state(runtime)
    with pytest.raises(errors.UnsafePath, match="ends with a dot"):
        client.push(adapter_dir, "acme/a", base="tiny-llama")
    assert catalog_state(runtime) == before


@pytest.fixture
def http(server_url: str) -> Any:
    with httpx.Client(base_url=server_url, timeout=30) as c:
        yield c


def _store(http: httpx.Client, data: bytes) -> dict[str, Any]:
    """Upload bytes as a client would (presigned on S3, through the server otherwise)."""
    sha = hashlib.sha256(data).hexdigest()
    entry = {"path": "blob", "sha256": sha, "size": len(data)}
    plan = http.post("/api/v1/adapters/acme/a/uploads", json={"files": [entry]}).json()
    if sha in plan["missing"]:
        url = plan["upload_urls"].get(sha)
        if url:
            assert httpx.put(url, content=data).status_code == 200
        else:
            assert http.put(f"/api/v1/blobs/{sha}", content=data).status_code == 201
    return entry


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ("./README.md", "unsafe_path"),
        ("docs//notes.md", "unsafe_path"),
        ("adapter_model.safetensors/", "unsafe_path"),
        ("notes ", "unsafe_path"),
        ("Adapter_Config.json", "duplicate_path"),
        (unicodedata.normalize("NFD", "café.md"), "unsafe_path"),
    ],
)
def test_commit_route_refuses_aliases_in_a_hand_made_body(
    http: httpx.Client, runtime: Runtime, adapter_library: dict[str, Path], extra: str, code: str
) -> None:
    good = LocalClient(runtime).push(adapter_library["v1"], "acme/a", base="tiny-llama")
    files = [
        {"path": f.path, "sha256": f.sha256, "size": f.size}
        for f in LocalClient(runtime).show(f"acme/a:{good.version.number}").files
    ]
    files.append({**_store(http, b"an unchecked file\n"), "path": extra})
    before = catalog_state(runtime)
    resp = http.post("/api/v1/adapters/acme/a/versions", json={"files": files})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == code
    assert catalog_state(runtime) == before
