"""PEFT loads adapters from lorareg by name and revision, as it would from the Hub."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from registry.client.local import LocalClient
from registry.domain import VersionInfo
from registry.runtime import Runtime
from tests.factories import make_llama
from tests.hf.conftest import REPO


def _logits(model: torch.nn.Module) -> torch.Tensor:
    ids = torch.tensor([[1, 5, 9, 17, 33, 65]])
    with torch.no_grad():
        return model(input_ids=ids).logits  # type: ignore[no-any-return]


@pytest.mark.parametrize("revision", ["production", "v2"])
def test_peft_from_pretrained_matches_the_folder(
    hub: str,
    runtime: Runtime,
    voice: list[VersionInfo],
    adapter_library: dict[str, Path],
    hf_cache: Path,
    revision: str,
) -> None:
    from peft import PeftModel

    LocalClient(runtime).promote(f"{REPO}:1", to="production")
    folder = adapter_library["v1" if revision == "production" else "v2"]
    expected = _logits(PeftModel.from_pretrained(make_llama(), folder))
    loaded = PeftModel.from_pretrained(
        make_llama(), REPO, revision=revision, cache_dir=str(hf_cache)
    )
    got = _logits(loaded)
    assert torch.equal(got, expected)
    assert not torch.equal(got, _logits(make_llama()))  # the adapter did something
