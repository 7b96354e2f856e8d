"""Checking a stored version against a registered base, and keeping the result."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from registry.catalog.push import PushRequest
from registry.catalog.queries import ref_row
from registry.catalog.refs import Ref, check_base_name
from registry.compat.bases import base_info
from registry.compat.check_records import latest_checks  # noqa: F401  (re-exported)
from registry.compat.checks import run_checks
from registry.compat.engines import get_engine
from registry.compat.findings import CheckReport
from registry.compat.fingerprint import BaseFingerprint
from registry.compat.tensors import tensor_loader
from registry.db import models as m
from registry.db.database import Database
from registry.domain import VersionInfo
from registry.errors import InvalidAdapter
from registry.formats.adapter import AdapterFile, inspect_adapter
from registry.formats.peft import WEIGHTS_NAME
from registry.storage.base import BlobStore


def check_version(
    db: Database,
    store: BlobStore,
    ref: Ref,
    *,
    base: str,
    engines: list[str] | None = None,
    actor: str,
    max_header_bytes: int,
) -> tuple[VersionInfo, CheckReport]:
    """Run every check of ``ref`` against registered base ``base`` and record the result.

    Raises BaseModelNotFound (nothing stored) when the base is not registered and
    UnknownEngine for an engine without a profile.
    """
    check_base_name(base)
    for e in engines or []:
        get_engine(e)  # refuse an unknown engine before any work
    with db.read() as s:
        row = ref_row(s, ref)
        version_id = row.id
        files = {f.path: (f.sha256, f.size) for f in row.files}
        info = base_info(s, base)
        trained_on = _fingerprint_of(s, row.base_model)
        from registry.catalog.queries import to_info

        version = to_info(s, row)
    adapter_files = {
        path: AdapterFile(path=path, size=size, read=_reader(store, sha))
        for path, (sha, size) in files.items()
    }
    contents = inspect_adapter(adapter_files, max_header_bytes=max_header_bytes)
    loader = tensor_loader(adapter_files[WEIGHTS_NAME].read, contents.header)
    report = run_checks(
        contents.config,
        contents.header,
        base=info,
        trained_on=trained_on,
        load_tensor=loader,
        engines=engines,
    )
    doc = report.to_json()
    with db.write() as s:
        s.add(
            m.CheckResult(
                version_id=version_id,
                base_model=base,
                verdict=report.verdict.value if report.verdict.value != "info" else "pass",
                engines=doc.get("engines", {}),
                report=doc,
                created_by=actor,
            )
        )
        s.add(
            m.Event(
                kind="check.recorded",
                namespace=version.namespace,
                adapter=version.name,
                version=version.number,
                actor=actor,
                payload={"base_model": base, "verdict": report.verdict.value},
            )
        )
    return version, report


def _fingerprint_of(session: Any, base: str | None) -> BaseFingerprint | None:
    """The fingerprint of the base a version was trained on, when that base is registered."""
    if base is None:
        return None
    row = session.scalar(select(m.BaseModel).where(m.BaseModel.name == base))
    if row is None or row.structure_hash is None:
        return None
    return BaseFingerprint(structure_hash=row.structure_hash, content_hash=row.content_hash)


def _reader(store: BlobStore, sha256: str):  # type: ignore[no-untyped-def]
    return lambda offset, length: store.read_range(sha256, offset, length)


def check_after_push(
    db: Database, store: BlobStore, version: VersionInfo, *, actor: str, max_header_bytes: int
) -> dict[str, Any] | None:
    """Push runs the checks by itself when the version's base is registered; the result is
    recorded with the version (warnings and failures do not undo the push: promotion
    gates use them). Returns a short summary, or None when there was nothing to check."""
    if version.base_model is None:
        return None
    with db.read() as s:
        registered = s.scalar(select(m.BaseModel.id).where(m.BaseModel.name == version.base_model))
    if registered is None:
        return None
    _, report = check_version(
        db,
        store,
        Ref(_repo(version), number=version.number),
        base=version.base_model,
        actor=actor,
        max_header_bytes=max_header_bytes,
    )
    return {
        "base_model": version.base_model,
        "verdict": report.verdict.value,
        "lines": report.lines(),
    }


def _repo(version: VersionInfo):  # type: ignore[no-untyped-def]
    from registry.catalog.refs import Repo

    return Repo(version.namespace, version.name)


def refuse_failing_push(
    db: Database, store: BlobStore, req: PushRequest, *, max_header_bytes: int
) -> None:
    """``push --strict``: before anything is recorded, check the uploaded (not yet
    committed) files against the version's base when it is registered; a FAIL is
    InvalidAdapter with the first findings, and the catalog stays as it was."""
    files = {
        f.path: AdapterFile(path=f.path, size=f.size, read=_reader(store, f.sha256))
        for f in req.files
    }
    contents = inspect_adapter(files, max_header_bytes=max_header_bytes)
    base = req.base_model or contents.config.base_model_name_or_path
    if base is None:
        return
    with db.read() as s:
        if s.scalar(select(m.BaseModel.id).where(m.BaseModel.name == base)) is None:
            return
        info = base_info(s, base)
        trained_on = _fingerprint_of(s, base)
    report = run_checks(
        contents.config,
        contents.header,
        base=info,
        trained_on=trained_on,
        load_tensor=tensor_loader(files[WEIGHTS_NAME].read, contents.header),
    )
    if report.verdict.value == "fail":
        first = "; ".join(f.line() for f in report.problems()[:3])
        raise InvalidAdapter(
            f"refused (--strict): {req.repo} fails its check against {base}: {first};"
            " nothing stored"
        )
