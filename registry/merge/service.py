"""The merge use case: a merge request checked and turned into a job, and its inputs
materialised for a worker.

The request is checked before it is queued: every adapter exists, fits the base (its
compatibility check against that base must not fail; one is run if none is recorded), the
method can compose these adapters exactly, and the weights match. The interference report
comes back with the job, so the user sees it before the merge runs.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from registry.catalog.queries import ref_row, to_info
from registry.catalog.refs import Ref, check_base_name, parse_ref, parse_repo
from registry.catalog.transfer import write_version
from registry.compat.bases import base_row
from registry.compat.sources import open_base_source
from registry.compat.version_checks import check_version
from registry.db import models as m
from registry.domain import FileEntry, VersionInfo
from registry.errors import InvalidInput
from registry.lifecycle.gates import latest_check
from registry.merge.adapters import AdapterInput, load_adapters
from registry.merge.job_queue import JobInfo, enqueue
from registry.merge.methods import METHODS, check_options
from registry.merge.preload import import_torch_in_background
from registry.runtime import Runtime


def request_merge(
    rt: Runtime,
    refs: list[str],
    *,
    base: str,
    actor: str,
    weights: list[float] | None = None,
    method: str = "sum",
    svd_rank: int | None = None,
    output: str | None = None,
    device: str = "auto",
    dtype: str | None = None,
) -> tuple[JobInfo, list[str]]:
    """Validate a merge and queue it; returns the job and the interference report lines."""
    if not refs:
        raise InvalidInput("name at least one adapter version to merge")
    require_torch()
    import_torch_in_background()
    if method not in METHODS:
        raise InvalidInput(f"unknown merge method {method!r}; use one of {', '.join(METHODS)}")
    if weights is not None and len(weights) != len(refs):
        raise InvalidInput(
            f"{len(weights)} weight(s) for {len(refs)} adapter(s); give one weight per adapter"
        )
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise InvalidInput(f"device {device!r}: use auto, cpu or cuda")
    check_base_name(base)
    versions = []
    with rt.db.read() as s:
        base_row(s, base)  # BaseModelNotFound, with how to register it
        for text in refs:
            row = ref_row(s, parse_ref(text))
            if row.kind != "adapter":
                raise InvalidInput(f"{text} is a merged model, not an adapter")
            versions.append(to_info(s, row))
    for v in versions:
        _require_compatible(rt, v, base, actor)
    out = (
        parse_repo(output)
        if output
        else parse_repo(f"{versions[0].namespace}/{versions[0].name}-merged")
    )
    with tempfile.TemporaryDirectory(prefix="lorareg-merge-plan-") as tmp:
        inputs = [materialize_adapter(rt, v, Path(tmp) / f"a{i}") for i, v in enumerate(versions)]
        loaded = load_adapters(inputs)  # refuses what cannot be merged exactly
        weight_list = check_options(len(loaded), method, weights, svd_rank)
        from registry.merge.compose import adapter_interference

        report = adapter_interference(loaded).lines() if len(loaded) > 1 else []
    spec: dict[str, Any] = {
        "inputs": [
            {
                "ref": v.ref,
                "repo": v.repo,
                "number": v.number,
                "content_id": v.content_id,
                "weight": w,
            }
            for v, w in zip(versions, weight_list, strict=True)
        ],
        "base": base,
        "method": method,
        "svd_rank": svd_rank,
        "device": device,
        "dtype": dtype,
        "output": str(out),
        "interference": report,
    }
    return enqueue(rt.db, spec, actor=actor), report


def torch_installed() -> bool:
    """Merging needs PyTorch; the registry itself does not, so it is an optional extra."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


# The README's pinned install: a loose `pip install torch` pulls a multi-GB CUDA build.
TORCH_INSTALL = "pip install torch==2.13.0 && pip install 'lorareg[merge]'"


def require_torch() -> None:
    if not torch_installed():
        raise InvalidInput(
            "merging needs PyTorch in the process that runs the merge (the CLI with --wait,"
            f" `lorareg serve` or `lorareg worker`): {TORCH_INSTALL}, then retry"
        )


def merge_blockers(report: dict[str, Any]) -> list[str]:
    """The failed findings of a stored check report that concern merging, by code.

    Engine findings (``engine`` set, codes ``engine.*``) say who can *serve* the adapter
    unmerged; they join a report only when a check asked for that engine, so letting them
    gate merges would make the gate depend on which engines the last check named.
    """
    return sorted(
        {
            str(f.get("code"))
            for f in report.get("findings", [])
            if f.get("severity") == "fail" and not f.get("engine")
        }
    )


def _require_compatible(rt: Runtime, v: VersionInfo, base: str, actor: str) -> None:
    with rt.db.read() as s:
        vid = s.scalar(
            select(m.AdapterVersion.id)
            .join(m.Adapter)
            .join(m.Namespace)
            .where(
                m.Namespace.name == v.namespace,
                m.Adapter.name == v.name,
                m.AdapterVersion.number == v.number,
            )
        )
        check = latest_check(s, vid, base) if vid is not None else None
        codes = merge_blockers(check.report) if check is not None else None
    if codes is None:
        _, report = check_version(
            rt.db,
            rt.store,
            Ref(parse_repo(v.repo), number=v.number),
            base=base,
            actor=actor,
            max_header_bytes=rt.settings.max_header_bytes,
        )
        codes = merge_blockers(report.to_json())
    if codes:
        raise InvalidInput(
            f"{v.ref} fails its compatibility checks against {base} ({', '.join(codes)});"
            f" see `lorareg check {v.ref} --base {base}`; merge it against the base it fits"
        )


def materialize_adapter(rt: Runtime, v: VersionInfo, dest: Path) -> AdapterInput:
    """Write a version's files to ``dest`` (verified) for the engine to read."""

    def fetch(entry: FileEntry) -> Iterator[bytes]:
        return rt.store.iter_bytes(entry.sha256)

    write_version(v, dest, fetch=fetch, cache=None)
    return AdapterInput(folder=dest, name=v.ref)


def materialize_base(rt: Runtime, base: str) -> Path:
    """A local folder holding the base's weights: the registered folder itself, or a copy
    of an ``s3://`` / ``hf://`` source kept in the cache by structure hash."""
    with rt.db.read() as s:
        row = base_row(s, base)
        source, key = row.source or "", row.content_hash or row.structure_hash or "unknown"
    if source and "://" not in source:
        folder = Path(source)
        if not folder.is_dir():
            raise InvalidInput(
                f"base {base}'s source folder {source} is gone; register it again from where"
                " its weights are now"
            )
        return folder
    dest = rt.settings.effective_cache_dir / "bases" / key
    if dest.is_dir():
        return dest
    src = open_base_source(source, s3_endpoint_url=rt.settings.s3_endpoint_url)
    tmp = Path(tempfile.mkdtemp(prefix=".base-", dir=_mkdir(dest.parent)))
    try:
        for name in src.files():
            with open(tmp / name, "wb") as fh:
                for chunk in src.stream(name):
                    fh.write(chunk)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p
