"""The merge gate (issue 13, case 3): only findings about merging block a merge, whatever
engines the newest check of the adapter asked about."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import errors
from registry.client.local import LocalClient
from registry.runtime import Runtime
from registry.services.jobs import list_jobs
from tests.factories import make_adapter, make_llama


@pytest.fixture
def catalog(runtime: Runtime, base_library: dict[str, Path], tmp_path: Path) -> LocalClient:
    c = LocalClient(runtime)
    c.add_base("tiny-llama", str(base_library["tiny"]))
    c.add_base("wide-llama", str(base_library["wide"]))
    dora = make_adapter(tmp_path / "dora", base=make_llama(), use_dora=True)
    c.push(dora, "acme/dora", base="tiny-llama")
    return c


def test_an_engine_check_that_fails_does_not_block_a_merge(
    catalog: LocalClient, runtime: Runtime
) -> None:
    served = catalog.check("acme/dora:1", base="tiny-llama", engines=["vllm"])
    assert served["report"]["verdict"] == "fail"  # vLLM refuses DoRA: serving, not merging

    job = catalog.merge(["acme/dora:1"], base="tiny-llama")["job"]

    assert job["state"] == "queued"
    assert [j.id for j in list_jobs(runtime.db)] == [job["id"]]


def test_a_plain_check_does_not_unblock_what_cannot_be_merged(
    catalog: LocalClient, runtime: Runtime
) -> None:
    catalog.check("acme/dora:1", base="wide-llama", engines=["vllm"])
    catalog.check("acme/dora:1", base="wide-llama")

    with pytest.raises(errors.InvalidInput) as exc:
        catalog.merge(["acme/dora:1"], base="wide-llama")

    assert "shapes.in_features" in exc.value.message and "engine." not in exc.value.message
    assert list_jobs(runtime.db) == []
