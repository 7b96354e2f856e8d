"""The adapter library's use cases: compose, analyze, compress (interference: ``library_map``).

Each checks everything it can from the catalog (refs, kinds, bases, weights, ranks, energy)
before reading a tensor, and a refusal writes nothing. Results are pydantic models that the
API declares, the local client returns and the remote client parses.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from registry.catalog.queries import to_info
from registry.catalog.refs import Repo, parse_repo
from registry.catalog.uploads import Visible
from registry.db import models as m
from registry.domain import VersionInfo
from registry.library import analyze as analysis
from registry.library.compose import check_compose, compose
from registry.library.compress import check_compress, compress
from registry.library.errors import InvalidEnergy, InvalidRank, WeightCountMismatch
from registry.library.factors import AdapterFactors
from registry.library.folders import input_ranks, output_dtype
from registry.library.interference import PairSummary, pairwise
from registry.library.output import write_adapter
from registry.library.results import AnalysisResult, LibraryVersion, ModuleAnalysis, ModuleResult
from registry.library.versions import opened, resolve_versions, store_version
from registry.runtime import Runtime

ComposeCommit = Callable[[Session, m.AdapterVersion, LibraryVersion], None]


def check_compose_request(
    rt: Runtime,
    refs: list[str],
    *,
    output: str,
    weights: list[float] | None = None,
    method: str = "cat",
    rank: int | None = None,
) -> tuple[list[VersionInfo], list[float], list[dict[str, Any]]]:
    """Every refusal of a composition, before any job is queued or anything written: the
    checked versions, one weight each, and their pairwise interference (the report)."""
    parse_repo(output)
    _check_weights_and_rank(refs, weights, rank)
    versions = resolve_versions(rt, refs)
    with opened(rt, versions) as sources:
        ranks = input_ranks(sources)
        w = check_compose(sources, weights, method=method, rank=rank, input_ranks=ranks)
        pairs = _interference(versions, sources)
    return versions, w, pairs


def _check_weights_and_rank(refs: list[str], weights: list[float] | None, rank: int | None) -> None:
    if weights is not None and len(weights) != len(refs):
        raise WeightCountMismatch(
            f"{len(weights)} weight(s) for {len(refs)} adapter(s); give one weight per adapter"
        )
    if rank is not None and rank <= 0:
        raise InvalidRank(f"rank must be a positive integer, got {rank}")


def _interference(
    versions: list[VersionInfo], sources: list[AdapterFactors]
) -> list[dict[str, Any]]:
    from registry.library.interference import all_pairs

    overlaps = pairwise(sources, all_pairs(len(sources))) if len(sources) > 1 else {}
    return [
        {"x": versions[i].ref, "y": versions[j].ref, **PairSummary.of(mods).__dict__}
        for (i, j), mods in overlaps.items()
    ]


def compose_versions(
    rt: Runtime,
    refs: list[str],
    *,
    output: str,
    actor: str,
    weights: list[float] | None = None,
    method: str = "cat",
    rank: int | None = None,
    visible: Visible = None,
    on_commit: ComposeCommit | None = None,
) -> LibraryVersion:
    """Compose ``refs`` into a new version of ``output`` (see ``registry.library.compose``).

    ``on_commit`` runs in the transaction that records the version, with the result (a
    compose job finishes there: the version exists exactly when its job succeeded)."""
    repo = parse_repo(output)
    _check_weights_and_rank(refs, weights, rank)
    versions = resolve_versions(rt, refs)
    with opened(rt, versions) as sources:
        ranks = input_ranks(sources)
        w = check_compose(sources, weights, method=method, rank=rank, input_ranks=ranks)
        result = compose(
            sources,
            w,
            method=method,
            rank=rank,
            default_rank=max(ranks),
            dtype=output_dtype(sources),
        )
        pairs = _interference(versions, sources)
        modules = [
            ModuleResult(module=k, rank=f.rank, relative_error=result.errors.get(k, 0.0))
            for k, f in sorted(result.modules.items())
        ]
        report = {
            "operation": "compose",
            "method": method,
            "inputs": [v.ref for v in versions],
            "content_ids": [v.content_id for v in versions],
            "weights": w,
            "relative_errors": result.errors,
        }
        desc = f"composed ({method}) from " + ", ".join(
            f"{v.ref}x{x:g}" for v, x in zip(versions, w, strict=True)
        )
        fields: dict[str, Any] = dict(
            operation="compose",
            inputs=[v.ref for v in versions],
            weights=w,
            method=method,
            max_rank=max(result.ranks.values()),
            max_relative_error=result.max_error,
            modules=modules,
            interference=pairs,
        )

        def commit(s: Session, row: m.AdapterVersion) -> None:
            if on_commit is not None:
                on_commit(s, row, LibraryVersion(version=to_info(s, row), **fields))

        version = _write_and_store(
            rt,
            sources,
            result.modules,
            repo,
            actor=actor,
            report=report,
            description=desc,
            inputs=list(zip(versions, w, strict=True)),
            visible=visible,
            on_commit=commit,
        )
    return LibraryVersion(version=version, **fields)


def compress_version(
    rt: Runtime,
    ref: str,
    *,
    actor: str,
    rank: int | None = None,
    energy: float | None = None,
    output: str | None = None,
    visible: Visible = None,
) -> LibraryVersion:
    """Truncate ``ref`` optimally per module into a new version (of ``output`` or the same
    adapter), and run its compatibility checks (vLLM included) when its base is registered."""
    if rank is not None and rank <= 0:
        raise InvalidRank(f"rank must be a positive integer, got {rank}")
    if energy is not None and not 0 < energy <= 1:
        raise InvalidEnergy(f"energy {energy} is outside (0, 1]")
    (v,) = resolve_versions(rt, [ref])
    repo = parse_repo(output) if output else parse_repo(v.repo)
    with opened(rt, [v]) as sources:
        check_compress(sources[0], rank=rank, energy=energy)
        result = compress(sources[0], rank=rank, energy=energy)
        how = f"rank {rank}" if rank is not None else f"energy {energy}"
        report = {
            "operation": "compress",
            "input": v.ref,
            "content_id": v.content_id,
            "rank": rank,
            "energy": energy,
            "ranks_before": result.ranks_before,
            "relative_errors": result.errors,
        }
        version = _write_and_store(
            rt,
            sources,
            result.modules,
            repo,
            actor=actor,
            report=report,
            description=f"compressed from {v.ref} ({how})",
            inputs=[(v, 1.0)],
            visible=visible,
        )
    return LibraryVersion(
        version=version,
        operation="compress",
        inputs=[v.ref],
        max_rank=max(result.ranks.values()),
        max_relative_error=result.max_error,
        modules=[
            ModuleResult(
                module=k,
                rank_before=result.ranks_before[k],
                rank=f.rank,
                relative_error=result.errors[k],
            )
            for k, f in sorted(result.modules.items())
        ],
        check=_check(rt, version, actor),
    )


def _write_and_store(
    rt: Runtime,
    sources: list[AdapterFactors],
    modules: dict[str, Any],
    repo: Repo,
    *,
    actor: str,
    report: dict[str, Any],
    description: str,
    inputs: list[tuple[VersionInfo, float]],
    visible: Visible,
    on_commit: Callable[[Session, m.AdapterVersion], None] | None = None,
) -> VersionInfo:
    with tempfile.TemporaryDirectory(prefix="lorareg-library-out-") as tmp:
        folder = write_adapter(
            Path(tmp) / "out",
            modules,
            template=sources[0].config,
            configs=[s.config for s in sources],
            report=report,
            dtype=output_dtype(sources),
        )
        return store_version(
            rt,
            folder,
            repo,
            actor=actor,
            description=description,
            tags={"library": str(report["operation"])},
            inputs=inputs,
            visible=visible,
            on_commit=on_commit,
        )


def _check(rt: Runtime, version: VersionInfo, actor: str) -> dict[str, Any] | None:
    """The new version's checks against its base, with vLLM's verdict (None: no base)."""
    from sqlalchemy import select

    from registry.catalog.refs import Ref
    from registry.compat.version_checks import check_version

    if version.base_model is None:
        return None
    with rt.db.read() as s:
        if s.scalar(select(m.BaseModel.id).where(m.BaseModel.name == version.base_model)) is None:
            return None
    _, report = check_version(
        rt.db,
        rt.store,
        Ref(parse_repo(version.repo), number=version.number),
        base=version.base_model,
        engines=["vllm"],
        actor=actor,
        max_header_bytes=rt.settings.max_header_bytes,
    )
    return {
        "base_model": version.base_model,
        "verdict": report.verdict.value,
        "lines": report.lines(),
    }


def analyze_version(rt: Runtime, ref: str) -> AnalysisResult:
    """Per module spectrum, effective ranks, relative update (base registered) and cost."""
    (v,) = resolve_versions(rt, [ref])
    with opened(rt, [v]) as sources:
        src = sources[0]
        norms = _base_norms(rt, v.base_model, list(src.shapes)) if v.base_model else None
        a = analysis.analyze(src, stored_bytes=v.size, base_norms=norms)
    need = a.max_lora_rank
    return AnalysisResult(
        ref=v.ref,
        base_model=v.base_model,
        max_rank=a.max_rank,
        rank_99=a.rank_at(0.99),
        rank_999=a.rank_at(0.999),
        max_lora_rank=need,
        vllm_default_fits=need is not None and need <= analysis.VLLM_DEFAULT_RANK,
        stored_bytes=a.stored_bytes,
        slot_bytes=a.slot_bytes(need or a.max_rank),
        slot_bytes_at_rank_999=a.slot_bytes(a.rank_at(0.999)),
        modules=[
            ModuleAnalysis(
                module=m.module,
                rank=m.rank,
                shape=[m.out_features, m.in_features],
                singular_values=m.singular_values,
                norm=m.norm,
                rank_99=m.rank_99,
                rank_999=m.rank_999,
                relative_update=m.relative_update,
            )
            for m in a.modules
        ],
        warnings=a.warnings,
    )


def _base_norms(rt: Runtime, base: str, modules: list[str]) -> dict[str, float] | None:
    """``||W0||_F`` of each adapted module's base weight; None when the base is not
    registered (the relative update is then left out, not guessed)."""
    from registry.errors import BaseModelNotFound
    from registry.library.base_weights import weight_norms
    from registry.merge.service import materialize_base

    try:
        folder = materialize_base(rt, base)
    except BaseModelNotFound:
        return None
    return weight_norms(folder, modules)
