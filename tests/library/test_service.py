"""compose, interference, analyze and compress through both clients (in-process and HTTP),
on SQLite and PostgreSQL: results against dense torch computations, the cache, lineage,
and every refusal with its own code and nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from registry.client.library_ops import composed
from registry.errors import LoraregError
from registry.library.factors import load_factors
from registry.library.results import LibraryVersion
from registry.merge.worker import Worker
from registry.runtime import Runtime
from registry.services.jobs import job_runners
from tests.factories import make_adapter, make_llama
from tests.fixtures.catalog import catalog_state


@pytest.fixture
def storage_backend() -> str:
    return "local"  # the library reads versions like any pull; storage has its own suites


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("library")
    t = ["q_proj", "v_proj", "o_proj"]
    return {
        "voice": make_adapter(root / "voice", seed=1, r=4, target_modules=t),
        "product": make_adapter(root / "product", seed=2, r=4, lora_alpha=4, target_modules=t),
        "compliance": make_adapter(root / "compliance", seed=3, r=8, use_rslora=True),
        "other-base": make_adapter(root / "other-base", seed=4, base_name="other-llama"),
        "wide": make_adapter(
            root / "wide", seed=5, base=make_llama(hidden_size=64, intermediate_size=128)
        ),
        "dora": make_adapter(root / "dora", seed=6, use_dora=True),
        "saved": make_adapter(root / "saved", seed=7, modules_to_save=["lm_head"]),
    }


def composed_by_job(client: Any, runtime: Runtime, refs: list[str], **kw: Any) -> LibraryVersion:
    """Queue a composition and run it: in this process (local client's ``wait_job``), or by
    a worker beside the server (remote: the test server runs no worker of its own)."""
    job_id = client.compose(refs, **kw)["job"]["id"]
    if client.__class__.__name__ != "LocalClient":
        Worker(runtime, runners=job_runners()).run_one(job_id)
    return composed(client.wait_job(job_id))


def _dense(folder: Path) -> dict[str, torch.Tensor]:
    src = load_factors(folder)
    try:
        return {k: src.factors(k, dtype=torch.float64).dense() for k in src.shapes}
    finally:
        src.close()


def _pulled(client: Any, ref: str, dest: Path) -> dict[str, torch.Tensor]:
    return _dense(Path(client.pull(ref, dest=dest).path))


def test_compose_interference_analyze_compress(
    client: Any, runtime: Runtime, library: dict[str, Path], tmp_path: Path
) -> None:
    for name in ("voice", "product", "compliance"):
        client.push(library[name], f"acme/{name}")
    dense = {n: _dense(library[n]) for n in ("voice", "product", "compliance")}

    doc = composed_by_job(
        client,
        runtime,
        ["acme/voice:1", "acme/product:1", "acme/compliance:1"],
        output="acme/storefront",
        weights=[1.0, 0.6, -1.0],
        method="cat",
    )
    assert doc.version.ref == "acme/storefront:1" and doc.max_relative_error == 0.0
    out = _pulled(client, "acme/storefront:1", tmp_path / "out")
    for k, d in out.items():
        want = sum(
            w * dense[n].get(k, 0)
            for n, w in (("voice", 1.0), ("product", 0.6), ("compliance", -1.0))
        )
        assert torch.allclose(d, torch.as_tensor(want), atol=1e-6), k

    first = client.interference(base="tiny-llama", namespace="acme", tags={})
    assert first.computed_pairs == 6 and first.cached_pairs == 0  # 4 adapters
    again = client.interference(base="tiny-llama")
    assert again.computed_pairs == 0 and again.cached_pairs == 6
    assert [p.model_dump() for p in again.pairs] == [p.model_dump() for p in first.pairs]
    pair = next(p for p in again.pairs if {p.x, p.y} == {"acme/voice:1", "acme/product:1"})
    dv, dp = dense[pair.x.split("/")[1][:-2]], dense[pair.y.split("/")[1][:-2]]
    for top in pair.top:
        k = top["module"]
        cos = float((dv[k] * dp[k]).sum() / (dv[k].norm() * dp[k].norm()))
        assert abs(top["cosine"] - cos) < 1e-5
        assert abs(top["overlap_x"] - float((dv[k] * dp[k]).sum() / dv[k].norm() ** 2)) < 1e-5

    an = client.analyze("acme/compliance:1")
    assert an.max_rank == 8 and an.max_lora_rank == 8 and an.vllm_default_fits
    for m in an.modules:
        s = torch.linalg.svdvals(dense["compliance"][m.module])[: m.rank]
        assert torch.allclose(torch.tensor(m.singular_values, dtype=s.dtype), s, atol=1e-6)

    comp = client.compress("acme/compliance:1", rank=2)
    assert comp.version.ref == "acme/compliance:2" and comp.max_rank == 2
    small = _pulled(client, "acme/compliance:2", tmp_path / "small")
    for m in comp.modules:
        d = dense["compliance"][m.module]
        u, s, vh = torch.linalg.svd(d)
        best = (u[:, :2] * s[:2]) @ vh[:2]
        assert torch.allclose(small[m.module], best, atol=1e-5)
        assert abs(m.relative_error - float((d - best).norm() / d.norm())) < 1e-5
    byenergy = client.compress("acme/compliance:1", energy=0.9, output="acme/compliance-small")
    assert byenergy.version.ref == "acme/compliance-small:1"
    assert all(m.relative_error <= (1 - 0.9) ** 0.5 + 1e-9 for m in byenergy.modules)


REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    (
        "compose",
        dict(refs=["acme/voice:1", "acme/other-base:1"], output="acme/x"),
        "different_bases",
    ),
    ("compose", dict(refs=["acme/voice:1", "acme/nope:1"], output="acme/x"), "adapter_not_found"),
    ("compose", dict(refs=["acme/voice:1", "acme/voice:9"], output="acme/x"), "version_not_found"),
    (
        "compose",
        dict(refs=["acme/voice:1", "acme/product:1"], output="acme/x", weights=[1.0]),
        "weight_count_mismatch",
    ),
    (
        "compose",
        dict(refs=["acme/voice:1", "acme/product:1"], output="acme/x", method="svd", rank=0),
        "invalid_rank",
    ),
    (
        "compose",
        dict(refs=["acme/voice:1", "acme/product:1"], output="acme/x", method="svd", rank=9),
        "invalid_rank",
    ),
    ("compose", dict(refs=["acme/voice:1", "acme/wide:1"], output="acme/x"), "shape_mismatch"),
    ("compose", dict(refs=["acme/voice:1", "acme/dora:1"], output="acme/x"), "unsupported_adapter"),
    (
        "compose",
        dict(refs=["acme/voice:1", "acme/saved:1"], output="acme/x"),
        "unsupported_adapter",
    ),
    (
        "compose",
        dict(refs=["acme/voice:1", "acme/compliance:1"], output="acme/x", method="linear"),
        "linear_undefined",
    ),
    ("compress", dict(ref="acme/voice:1", rank=5), "invalid_rank"),
    ("compress", dict(ref="acme/voice:1", rank=-1), "invalid_rank"),
    ("compress", dict(ref="acme/voice:1", energy=0.0), "invalid_energy"),
    ("compress", dict(ref="acme/voice:1", energy=1.5), "invalid_energy"),
    ("interference", dict(refs=["acme/voice:1", "acme/other-base:1"]), "different_bases"),
]


def test_refusals_have_their_own_code_and_change_nothing(
    client: Any, runtime: Runtime, library: dict[str, Path]
) -> None:
    for name in ("voice", "product", "compliance", "other-base", "wide", "dora", "saved"):
        client.push(library[name], f"acme/{name}")
    before = catalog_state(runtime)
    for op, kw, code in REFUSALS:
        kw = dict(kw)
        with pytest.raises(LoraregError) as err:
            if op == "compose":
                client.compose(kw.pop("refs"), **kw)
            elif op == "compress":
                client.compress(kw.pop("ref"), **kw)
            else:
                client.interference(kw.pop("refs"), **kw)
        assert err.value.code == code, (op, kw, err.value.message)
        assert "Traceback" not in err.value.message
    assert catalog_state(runtime) == before
