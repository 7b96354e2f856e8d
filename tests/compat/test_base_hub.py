"""Base model registration from a Hugging Face-compatible hub, through the real
huggingface_hub client talking HTTP to a fake hub on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.compat import inspect_base
from registry.errors import BaseSourceNotFound, InvalidBaseModel, Unavailable
from tests.compat.corpus import header_bytes
from tests.compat.fake_hub import FakeHub, Repo, serve
from tests.fixtures.s3 import free_port

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub(large_base: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    fake = FakeHub()
    fake.add_folder("acme/tiny-llama", large_base, commit=COMMIT)
    with serve(fake) as running:
        # huggingface_hub reads HF_ENDPOINT at import, so the source is also given the
        # endpoint explicitly; the variable is set as a user would set it.
        monkeypatch.setenv("HF_ENDPOINT", running.url)
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        yield running


def test_hub_base_reads_headers_through_huggingface_hub(
    hub: FakeHub, large_base: Path, tmp_path: Path
) -> None:
    info = inspect_base(
        "hf://acme/tiny-llama@main",
        hf_endpoint=hub.url,
        hf_token="hf_testtoken",
        hf_cache_dir=tmp_path / "hf-cache",
    )

    local = inspect_base(str(large_base))
    assert info.tensors == local.tensors
    assert info.structure_hash == local.structure_hash
    # The LFS sha256s from the repo listing give the same content hash as hashing locally.
    assert info.content_hash == local.content_hash
    # Pinned to the commit the revision resolved to.
    assert info.source == f"hf://acme/tiny-llama@{COMMIT}"
    assert info.architecture["model_type"] == "llama"
    # Only headers and the two JSON files crossed the wire.
    assert info.bytes_read == header_bytes(large_base) == hub.sent
    assert info.bytes_read < info.total_size / 500
    # Every request carried the token and used only the routes the fake hub serves.
    assert {auth for _, _, auth in hub.requests} == {"Bearer hf_testtoken"}
    assert hub.requests[0] == (
        "GET",
        "/api/models/acme/tiny-llama/revision/main",
        "Bearer hf_testtoken",
    )
    assert all(
        path.startswith(f"/acme/tiny-llama/resolve/{COMMIT}/") for _, path, _ in hub.requests[1:]
    )


def test_hub_revision_can_be_a_commit(hub: FakeHub, tmp_path: Path) -> None:
    info = inspect_base(
        f"hf://acme/tiny-llama@{COMMIT}", hf_endpoint=hub.url, hf_cache_dir=tmp_path, hf_token=False
    )
    assert info.source.endswith(COMMIT)


def test_hub_missing_repo_or_revision_is_not_found(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(BaseSourceNotFound, match="no such repository"):
        inspect_base("hf://acme/nope", hf_endpoint=hub.url, hf_cache_dir=tmp_path, hf_token=False)
    with pytest.raises(BaseSourceNotFound, match=r"@v9 on .*: no such revision"):
        inspect_base(
            "hf://acme/tiny-llama@v9", hf_endpoint=hub.url, hf_cache_dir=tmp_path, hf_token=False
        )


def test_hub_repo_without_safetensors_is_refused(hub: FakeHub, tmp_path: Path) -> None:
    hub.repos["acme/readme-only"] = Repo(files={"README.md": b"# nothing here"}, commit=COMMIT)
    with pytest.raises(InvalidBaseModel, match="holds no safetensors"):
        inspect_base(
            "hf://acme/readme-only", hf_endpoint=hub.url, hf_cache_dir=tmp_path, hf_token=False
        )


def test_hub_that_does_not_answer_is_unavailable(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unavailable, match="check HF_ENDPOINT"):
        inspect_base(
            "hf://acme/tiny-llama", hf_endpoint=closed, hf_cache_dir=tmp_path, hf_token=False
        )
