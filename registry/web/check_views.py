"""Compatibility check results shaped for the pages: a verdict per serving engine, and the
findings worth reading first. Presentation only; the results come from
``registry.compat.version_checks.latest_checks``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Worst first: what blocks serving comes before what merely informs.
SEVERITY_ORDER = {"fail": 0, "warn": 1, "info": 2, "pass": 3}


@dataclass(frozen=True)
class EngineVerdict:
    key: str
    name: str
    verdict: str
    summary: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    message: str
    hint: str
    module: str | None
    engine: str | None


@dataclass(frozen=True)
class CheckView:
    base_model: str
    verdict: str
    created_at: datetime | None
    created_by: str
    engines: list[EngineVerdict]
    problems: list[Finding]  # fail, warn and info findings, worst first
    passed: list[Finding]


def _finding(doc: dict[str, Any]) -> Finding:
    return Finding(
        code=str(doc.get("code", "")),
        severity=str(doc.get("severity", "info")),
        message=str(doc.get("message", "")),
        hint=str(doc.get("hint") or ""),
        module=doc.get("module"),
        engine=doc.get("engine"),
    )


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def check_view(result: dict[str, Any]) -> CheckView:
    """One base's newest check, as ``latest_checks`` returns it."""
    report = result.get("report") or {}
    engines = [
        EngineVerdict(
            key=key,
            name=str(doc.get("display_name") or key),
            verdict=str(doc.get("verdict", "")),
            summary=str(doc.get("summary", "")),
            settings=dict(doc.get("settings") or {}),
        )
        for key, doc in (report.get("engines") or {}).items()
    ]
    findings = [_finding(f) for f in report.get("findings") or []]
    problems = sorted(
        (f for f in findings if f.severity != "pass"),
        key=lambda f: SEVERITY_ORDER.get(f.severity, 9),
    )
    return CheckView(
        base_model=str(result.get("base_model", "")),
        verdict=str(result.get("verdict", "")),
        created_at=_when(result.get("created_at")),
        created_by=str(result.get("created_by", "")),
        engines=engines,
        problems=problems,
        passed=[f for f in findings if f.severity == "pass"],
    )


def check_views(results: list[dict[str, Any]], *, trained_on: str | None) -> list[CheckView]:
    """Every base a version was checked against, the base it was trained on first."""
    views = [check_view(r) for r in results]
    return sorted(views, key=lambda c: (c.base_model != trained_on, c.base_model))
