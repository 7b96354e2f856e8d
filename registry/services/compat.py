"""Base models and compatibility checks of a version, once for every edge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from registry.catalog.queries import ref_row
from registry.catalog.refs import Ref, check_base_name
from registry.compat import bases
from registry.compat.version_checks import check_version
from registry.db.database import Database
from registry.runtime import Runtime
from registry.services.models import BaseDetail, BaseSummary, CheckRun


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


def list_bases(db: Database) -> list[BaseSummary]:
    """Every registered base model by name, with its fingerprints and counts."""
    with db.read() as s:
        return [BaseSummary.model_validate(doc) for doc in bases.list_bases(s)]


def get_base(db: Database, name: str) -> BaseDetail:
    """One base model with its tensors; BaseModelNotFound when it is not registered."""
    check_base_name(name)
    with db.read() as s:
        return BaseDetail.model_validate(bases.base_detail(s, name))


class BaseHeadline(BaseModel):
    """A base model as a list shows it, without reading every tensor's header."""

    model_config = ConfigDict(frozen=True)

    name: str
    source: str | None
    architecture: dict[str, Any]
    total_size: int | None
    structure_hash: str | None
    created_at: datetime

    @property
    def model_type(self) -> str:
        kinds = self.architecture.get("architectures") or []
        return str(kinds[0]) if kinds else str(self.architecture.get("model_type") or "")


class BasePage(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[BaseHeadline]
    has_next: bool


def base_page(db: Database, *, after: str | None = None, limit: int = 50) -> BasePage:
    """Base models by name after ``after``, a keyset page."""
    with db.read() as s:
        found, more = bases.base_headlines(s, after=after, limit=limit)
    items = [
        BaseHeadline.model_validate({**d, "architecture": d["architecture"] or {}}) for d in found
    ]
    return BasePage(items=items, has_next=more)


def base_names(db: Database, *, limit: int = 500) -> list[str]:
    """Registered base model names: suggestions for a filter."""
    with db.read() as s:
        return bases.base_names(s, limit=limit)


def named_bases(db: Database, *, visible: frozenset[str] | None, limit: int = 200) -> list[str]:
    """The bases worth picking for a viewer: the registered ones (shared by everyone), and
    those that only its namespaces' (``visible``; None: all) adapters name."""
    with db.read() as s:
        registered = bases.base_names(s, limit=limit)
        named = bases.named_base_names(s, visible=visible, limit=limit)
    return sorted({*registered, *named})
