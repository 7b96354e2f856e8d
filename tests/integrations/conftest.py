"""Fixtures for the vLLM plugin's resolver (no vLLM needed): a registry with acme/voice
(v1, v2 on tiny-llama) and acme/wide (v1 trained on another base), and a resolver built
the way the plugin builds it, serving the tiny base's folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.integrations.vllm.cache import NodeCache
from registry.integrations.vllm.resolver import AdapterResolver
from registry.sync import source_for

BASE = "tiny-llama"
# Both catalogs, the local store: the resolver's own logic. One test adds S3 + HTTP.
BOTH_DATABASES = pytest.mark.parametrize(
    ("db_backend", "storage_backend"), [("sqlite", "local"), ("postgres", "local")], indirect=True
)


@pytest.fixture
def registry(
    client: Any,
    adapter_library: dict[str, Path],
    base_library: dict[str, Path],
    wide_adapter: Path,
) -> Any:
    client.add_base(BASE, str(base_library["tiny"]))
    client.add_base("wide-llama", str(base_library["wide"]))
    client.push(adapter_library["v1"], "acme/voice", base=BASE)
    client.push(adapter_library["v2"], "acme/voice", base=BASE)
    client.push(wide_adapter, "acme/wide", base="wide-llama")
    client.promote("acme/voice:1", to="production")
    client.set_alias("acme/voice", "canary", 2)
    return client


def make_resolver(
    client: Any, served: Path, cache_dir: Path, *, max_bytes: int = 10**9, **kw: Any
) -> AdapterResolver:
    return AdapterResolver(
        source_for(client),
        client,
        NodeCache(cache_dir, max_bytes=max_bytes),
        served_model=str(served),
        base=kw.pop("base", BASE),
        **kw,
    )


@pytest.fixture
def resolver(
    registry: Any, base_library: dict[str, Path], tmp_path: Path
) -> Iterator[AdapterResolver]:
    r = make_resolver(registry, base_library["tiny"], tmp_path / "cache")
    yield r
    r.close()
