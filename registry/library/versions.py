"""Catalog side of the library: refs to checked versions, versions to local folders, new
versions from a written folder (with lineage to their inputs)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog.manifest import sha256_file
from registry.catalog.push import PushRequest, commit_version
from registry.catalog.queries import ref_row, to_info
from registry.catalog.refs import Repo, parse_ref
from registry.catalog.uploads import Visible, record_upload
from registry.db import models as m
from registry.domain import FileEntry, VersionInfo
from registry.library.errors import DifferentBases, UnsupportedAdapter
from registry.library.factors import AdapterFactors, load_factors
from registry.merge.service import materialize_adapter
from registry.runtime import Runtime

MAX_INPUTS = 200  # adapters one request may name: bounds the work a caller can ask for


def resolve_versions(rt: Runtime, refs: Sequence[str]) -> list[VersionInfo]:
    """Each ref as a LoRA adapter version (NotFound for unknown refs, UnsupportedAdapter for
    merged models), all on one base (DifferentBases)."""
    if len(refs) > MAX_INPUTS:
        raise UnsupportedAdapter(f"{len(refs)} adapters; at most {MAX_INPUTS} per request")
    parsed = [parse_ref(r) for r in refs]
    with rt.db.read() as s:
        versions = [to_info(s, ref_row(s, ref)) for ref in parsed]
    for v in versions:
        if v.kind != "adapter" or v.peft_type != "LORA":
            raise UnsupportedAdapter(
                f"{v.ref} is a {v.kind} ({v.peft_type}), not a LoRA adapter; only LoRA"
                " adapters have low-rank factors to compose, compare or truncate"
            )
    require_one_base(versions)
    return versions


def require_one_base(versions: Sequence[VersionInfo]) -> str | None:
    bases = {v.base_model for v in versions}
    if len(bases) > 1:
        listed = ", ".join(f"{v.ref} on {v.base_model or '(no base recorded)'}" for v in versions)
        raise DifferentBases(
            f"these adapters were trained on different bases ({listed}); their deltas change"
            " different weights, so combining or comparing them means nothing"
        )
    return next(iter(bases), None)


@contextmanager
def opened(rt: Runtime, versions: Sequence[VersionInfo]) -> Iterator[list[AdapterFactors]]:
    """The versions' files in a private temporary folder, validated as plain LoRA."""
    with tempfile.TemporaryDirectory(prefix="lorareg-library-") as tmp:
        sources: list[AdapterFactors] = []
        try:
            for i, v in enumerate(versions):
                folder = materialize_adapter(rt, v, Path(tmp) / f"in-{i}").folder
                sources.append(load_factors(folder, label=v.ref))
            yield sources
        finally:
            for src in sources:
                src.close()


def store_version(
    rt: Runtime,
    folder: Path,
    repo: Repo,
    *,
    actor: str,
    description: str,
    tags: dict[str, str],
    inputs: Sequence[tuple[VersionInfo, float]],
    visible: Visible = None,
    on_commit: Callable[[Session, m.AdapterVersion], None] | None = None,
) -> VersionInfo:
    """Upload the folder's files and record them as ``repo``'s next version, with a lineage
    row per input (as merges record theirs), in one transaction with ``on_commit``."""
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        sha = sha256_file(path)
        size = path.stat().st_size
        record_upload(rt.db, sha256=sha, size=size, visible=visible)
        rt.store.put_file(sha, path)
        files.append(FileEntry(path=path.relative_to(folder).as_posix(), sha256=sha, size=size))
    base = require_one_base([v for v, _ in inputs])
    req = PushRequest(
        repo=repo,
        files=files,
        author=actor,
        base_model=base,
        description=description,
        tags=tags,
        regions=rt.settings.replica_regions,
    )

    def record(s: Session, row: m.AdapterVersion) -> None:
        """Lineage rows (and the caller's ``on_commit``) in the version's own transaction."""
        known = set(
            s.scalars(select(m.MergeInput.input_id).where(m.MergeInput.output_id == row.id))
        )
        for pos, (v, weight) in enumerate(inputs):
            inp = ref_row(s, parse_ref(v.ref)).id
            if inp not in known and inp != row.id:
                known.add(inp)
                s.add(m.MergeInput(output_id=row.id, input_id=inp, weight=weight, position=pos))
        if on_commit is not None:
            on_commit(s, row)

    result = commit_version(
        rt.db,
        rt.store,
        req,
        max_header_bytes=rt.settings.max_header_bytes,
        visible=visible,
        on_commit=record,
    )
    return result.version
