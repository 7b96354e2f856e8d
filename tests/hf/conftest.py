"""Fixtures for the Hugging Face Hub-compatible routes, exercised with real clients.

huggingface_hub reads ``HF_ENDPOINT`` once, at import, into ``huggingface_hub.constants``
(``ENDPOINT`` and the resolve URL template) and into the module-level ``HfApi`` behind
``file_exists`` (which PEFT calls). ``hub`` points all three at the live server, as
``HF_ENDPOINT`` would in a fresh process, and turns offline mode off.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.client.local import LocalClient
from registry.domain import VersionInfo
from registry.runtime import Runtime

REPO = "acme/brand-voice"


@pytest.fixture
def hub(server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The live server's URL, set as huggingface_hub's default endpoint."""
    import huggingface_hub.constants as constants
    from huggingface_hub import hf_api

    monkeypatch.setattr(constants, "ENDPOINT", server_url)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        server_url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(hf_api.api, "endpoint", server_url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server_url


@pytest.fixture
def hf_cache(tmp_path: Path) -> Path:
    """An empty Hugging Face cache folder for this test."""
    return tmp_path / "hf-cache"


@pytest.fixture
def voice(runtime: Runtime, adapter_library: dict[str, Path]) -> list[VersionInfo]:
    """acme/brand-voice v1 and v2 (different weights), both for base tiny-llama."""
    client = LocalClient(runtime)
    return [client.push(adapter_library[v], REPO, base="tiny-llama").version for v in ("v1", "v2")]


def copy_with_readme(src: Path, dest: Path, text: str) -> Path:
    """A copy of an adapter folder whose README differs: the other files are shared."""
    shutil.copytree(src, dest)
    (dest / "README.md").write_text(text)
    return dest
