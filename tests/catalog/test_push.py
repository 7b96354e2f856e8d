"""Push through both clients, on every catalog and storage backend."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from registry.domain import EvalRecord
from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state


def test_push_creates_numbered_versions(client: Any, adapter_library: dict[str, Path]) -> None:
    r1 = client.push(
        adapter_library["v1"],
        "acme/brand-voice",
        base="meta-llama/Llama-3.1-8B",
        tags={"owner": "marketing"},
        evals=[EvalRecord(metric="helpfulness", value=0.8)],
        description="first cut",
    )
    r2 = client.push(adapter_library["v2"], "acme/brand-voice", base="meta-llama/Llama-3.1-8B")
    assert (r1.created, r1.version.number) == (True, 1)
    assert (r2.created, r2.version.number) == (True, 2)
    assert r2.version.parent == 1
    v1 = client.show("acme/brand-voice:1")
    assert v1.tags == {"owner": "marketing"}
    assert v1.description == "first cut"
    assert [(e.metric, e.value) for e in v1.evals] == [("helpfulness", 0.8)]
    assert v1.r == 4 and v1.lora_alpha == 8 and sorted(v1.target_modules) == ["q_proj", "v_proj"]
    assert v1.base_model == "meta-llama/Llama-3.1-8B"
    assert len(v1.content_id) == 40 and v1.content_id != r2.version.content_id
    assert {f.path for f in v1.files} == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",
    }
    assert client.show("acme/brand-voice").number == 2


def test_identical_content_creates_nothing_and_sends_nothing(
    client: Any, runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    first = client.push(adapter_library["v1"], "acme/a")
    before = catalog_state(runtime)
    again = client.push(adapter_library["v1"], "acme/a")
    assert again.created is False
    assert again.version.number == first.version.number
    assert again.bytes_uploaded == 0
    assert catalog_state(runtime) == before


def test_identical_files_stored_once_across_adapters(
    client: Any, runtime: Runtime, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    client.push(adapter_library["v1"], "acme/a")
    blobs = catalog_state(runtime)["blobs"]
    copy = tmp_path / "copy"
    shutil.copytree(adapter_library["v1"], copy)
    (copy / "README.md").write_text("a different model card\n")
    result = client.push(copy, "other/b")
    assert result.created
    assert result.blobs_reused == 2  # config and weights already stored
    assert len(catalog_state(runtime)["blobs"]) == len(blobs) + 1


def test_base_model_defaults_to_config(client: Any, adapter_library: dict[str, Path]) -> None:
    v = client.push(adapter_library["v1"], "acme/a").version
    assert v.base_model == "tiny-llama"


def test_history_lists_versions_and_tags(client: Any, adapter_library: dict[str, Path]) -> None:
    client.push(adapter_library["v1"], "acme/a")
    client.push(adapter_library["v2"], "acme/a")
    client.tag("acme/a:1", {"stage-note": "baseline"})
    kinds = [(e.kind, e.version) for e in client.history("acme/a")]
    assert kinds == [("version.created", 1), ("version.created", 2), ("version.tagged", 1)]
    assert client.show("acme/a:1").tags == {"stage-note": "baseline"}


def test_list_adapters(client: Any, adapter_library: dict[str, Path]) -> None:
    client.push(adapter_library["v1"], "acme/a")
    client.push(adapter_library["v2"], "acme/a")
    client.push(adapter_library["v1"], "beta/b")
    rows = {(a.namespace, a.name): (a.versions, a.latest) for a in client.list_adapters()}
    assert rows == {("acme", "a"): (2, 2), ("beta", "b"): (1, 1)}
    assert [a.name for a in client.list_adapters("beta")] == ["b"]
    assert client.list_adapters("nobody") == []
