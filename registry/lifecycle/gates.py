"""The compatibility gate: what stored check results say about a version's promotion."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import models as m


def latest_check(session: Session, version_id: int, base: str) -> m.CheckResult | None:
    return session.scalar(
        select(m.CheckResult)
        .where(m.CheckResult.version_id == version_id, m.CheckResult.base_model == base)
        .order_by(m.CheckResult.id.desc())
        .limit(1)
    )


def compat_problems(session: Session, version: m.AdapterVersion, engines: list[str]) -> list[str]:
    """Unmet compatibility conditions, phrased for the user (empty: the gate is open).

    The newest check of the version against its own base model counts: none at all, an
    overall failure, or a named engine that cannot serve it are each a problem.
    """
    ref = f"{version.adapter.namespace.name}/{version.adapter.name}:{version.number}"
    if version.base_model is None:
        return [f"{ref} has no base model to check against; push it with --base"]
    check = latest_check(session, version.id, version.base_model)
    if check is None:
        return [
            f"no compatibility check of {ref} against {version.base_model};"
            f" run `lorareg check {ref} --base {version.base_model}`"
        ]
    problems = []
    if check.verdict == "fail":
        codes = sorted(
            {f["code"] for f in check.report.get("findings", []) if f.get("severity") == "fail"}
        )
        problems.append(
            f"the compatibility check against {version.base_model} failed"
            + (f" ({', '.join(codes)})" if codes else "")
        )
    for engine in engines:
        verdict = (check.engines.get(engine) or {}).get("verdict")
        if verdict not in ("pass", "warn"):
            problems.append(f"{engine} cannot serve {ref} (check verdict: {verdict or 'none'})")
    return problems
