"""Fixtures for the compatibility tests: one session-wide library of bases and adapters."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat.corpus import Library
from tests.factories import make_llama, save_base


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """Tiny bases and real PEFT adapters, each built on first use (see corpus.py)."""
    return Library(tmp_path_factory.mktemp("compat"))


@pytest.fixture(scope="session")
def large_base(library: Library) -> Path:
    """A ~5 MB LLaMA in three shards: big enough that headers are a tiny fraction of it."""
    folder = library.root / "bases" / "llama-large"
    if not folder.exists():
        model = make_llama(hidden_size=256, intermediate_size=512, num_attention_heads=4)
        save_base(model, folder, max_shard_size="2MB")
    return folder
