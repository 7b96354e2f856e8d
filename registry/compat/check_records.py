"""Stored check results, read without loading the check machinery (``lorareg show``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from registry.catalog.queries import ref_row
from registry.catalog.refs import Ref
from registry.db import models as m
from registry.db.database import Database
from registry.timestamps import iso_z


def latest_checks(db: Database, ref: Ref) -> list[dict[str, Any]]:
    """The newest check of a version against each base it was checked against."""
    with db.read() as s:
        row = ref_row(s, ref)
        rows = s.scalars(
            select(m.CheckResult)
            .where(m.CheckResult.version_id == row.id)
            .order_by(m.CheckResult.id.desc())
        ).all()
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.base_model not in seen:
            seen[r.base_model] = {
                "base_model": r.base_model,
                "verdict": r.verdict,
                "created_at": iso_z(r.created_at),
                "created_by": r.created_by,
                "report": r.report,
            }
    return list(seen.values())
