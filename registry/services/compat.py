"""Compatibility checks of a version, once for every edge."""

from __future__ import annotations

from registry.catalog.queries import ref_row
from registry.catalog.refs import Ref
from registry.compat.version_checks import check_version
from registry.runtime import Runtime
from registry.services.models import CheckRun


def pinned(rt: Runtime, ref: Ref) -> Ref:
    """``ref`` pinned to its version number (a label is resolved once, here)."""
    if ref.number is not None:
        return ref
    with rt.db.read() as s:
        return Ref(ref.repo, number=ref_row(s, ref).number)


def run_check(
    rt: Runtime, ref: Ref, *, base: str, engines: list[str] | None, actor: str
) -> CheckRun:
    """Check ``ref`` against registered base ``base`` (and ``engines``); the result is kept."""
    version, report = check_version(
        rt.db,
        rt.store,
        pinned(rt, ref),
        base=base,
        engines=engines,
        actor=actor,
        max_header_bytes=rt.settings.max_header_bytes,
    )
    return CheckRun(
        version=version.ref, base_model=base, report=report.to_json(), lines=report.lines()
    )
