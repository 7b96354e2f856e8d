"""Base models and checks wired to the catalog: registration, push-time checks, gates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry import errors
from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state


def test_register_check_and_gate(
    client: Any, runtime: Runtime, adapter_library: dict[str, Path], base_library: dict[str, Path]
) -> None:
    doc = client.add_base("tiny-llama", str(base_library["tiny"]))
    assert doc["created"] and doc["tensors"] > 10 and len(doc["structure_hash"]) == 64
    assert client.add_base("tiny-llama", str(base_library["tiny"]))["created"] is False
    with pytest.raises(errors.AlreadyExists):
        client.add_base("tiny-llama", str(base_library["wide"]))
    assert [b["name"] for b in client.list_bases()] == ["tiny-llama"]
    assert client.get_base("tiny-llama")["architecture"]["model_type"] == "llama"

    pushed = client.push(adapter_library["v1"], "acme/voice")  # base from config: tiny-llama
    assert pushed.check is not None and pushed.check["verdict"] in ("pass", "warn")

    client.add_base("wide-llama", str(base_library["wide"]))
    result = client.check("acme/voice:1", base="wide-llama", engines=["vllm"])
    assert result["report"]["verdict"] == "fail"
    codes = {f["code"] for f in result["report"]["findings"] if f["severity"] == "fail"}
    assert any(c.startswith("shapes.") for c in codes), codes
    latest = {c["base_model"]: c["verdict"] for c in client.checks("acme/voice:1")}
    assert latest["wide-llama"] == "fail" and latest["tiny-llama"] in ("pass", "warn")

    client.set_policy("acme", {"require_compatibility": True, "engines": ["vllm", "peft"]})
    client.promote("acme/voice:1", to="production")  # checked against its own base: passes
    assert client.show("acme/voice@production").number == 1


def test_bad_check_requests_store_nothing(
    client: Any, runtime: Runtime, adapter_library: dict[str, Path], base_library: dict[str, Path]
) -> None:
    client.push(adapter_library["v1"], "acme/voice")
    client.add_base("tiny-llama", str(base_library["tiny"]))
    before = catalog_state(runtime)
    with pytest.raises(errors.BaseModelNotFound, match="lorareg base add"):
        client.check("acme/voice:1", base="unknown-base")
    with pytest.raises(errors.UnknownEngine):
        client.check("acme/voice:1", base="tiny-llama", engines=["tgi-9000"])
    with pytest.raises(errors.BaseSourceNotFound):
        client.add_base("ghost", str(base_library["tiny"] / "missing"))
    with pytest.raises(errors.InvalidName):
        client.add_base("bad name!", str(base_library["tiny"]))
    assert catalog_state(runtime) == before
