"""The interference gate: ``max_interference`` bounds, per named adapter, the largest
|cosine| over shared modules between the promoted version and that adapter's current
production version for the same base (``lorareg policy set acme --max-interference
compliance=0.3``).

The figures come from the interference cache (content addressed, filled by ``lorareg
interference``); a pair never computed is an unmet condition that says how to compute it,
so the gate never opens on a figure it does not have.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog.interference_pairs import cached_modules, worst_module
from registry.db import models as m


def _production(session: Session, namespace: str, name: str, base: str) -> m.AdapterVersion | None:
    return session.scalar(
        select(m.AdapterVersion)
        .join(m.Adapter)
        .join(m.Namespace)
        .where(
            m.Namespace.name == namespace,
            m.Adapter.name == name,
            m.AdapterVersion.base_model == base,
            m.AdapterVersion.stage == "production",
        )
    )


def interference_problems(
    session: Session, version: m.AdapterVersion, bounds: dict[str, float]
) -> list[str]:
    """Every bound of ``bounds`` (``name`` in the version's namespace, or ``ns/name``) the
    version passes or cannot be shown to meet, phrased for the user (empty: the gate opens).

    A named adapter with no production version for the version's base has nothing to
    interfere with, and the version's own adapter is never compared with itself."""
    own_ns, own_name = version.adapter.namespace.name, version.adapter.name
    ref = f"{own_ns}/{own_name}:{version.number}"
    problems: list[str] = []
    for target, bound in sorted(bounds.items()):
        ns, _, name = target.rpartition("/")
        ns = ns or own_ns
        if (ns, name) == (own_ns, own_name) or version.base_model is None:
            continue
        prod = _production(session, ns, name, version.base_model)
        if prod is None or prod.content_id == version.content_id:
            continue
        other = f"{ns}/{name}:{prod.number}"
        modules = cached_modules(session, version.content_id, prod.content_id)
        if modules is None:
            problems.append(
                f"interference of {ref} with {other} (production; bound {bound:g}) is not"
                f" computed; run `lorareg interference {ref} {other}`"
            )
            continue
        module, cosine = worst_module(modules)
        if cosine > bound:
            problems.append(
                f"interference with {other} (production) is {cosine:.3f} on {module},"
                f" above the bound {bound:g}"
            )
    return problems
