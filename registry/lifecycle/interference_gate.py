"""The interference gate: ``max_interference`` bounds, per named adapter, the largest
|cosine| over shared modules between the promoted version and that adapter's current
production version for the same base (``lorareg policy set acme --max-interference
compliance=0.3``).

The figures come from the interference cache (content addressed). A pair the cache lacks is
computed by the gate itself before the promotion is planned (``fill_interference``: the
named adapters' production versions only, O(r1 r2 (d_in + d_out)) per module with the
numpy algebra of ``registry.formats.lowrank``, read module by module from the blob store)
and stored, so the promotion, the dashboard's preview and an experiment's conclusion all
give the real verdict. The gate reads at most ``MAX_GATE_BYTES`` of weights for one
evaluation; a pair it cannot compute (above that bound, DoRA, ...) stays an unmet
condition that says why and how to compute it, so the gate never opens on a figure it does
not have.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog.interference_pairs import cached_modules, pair_key, store_pairs, worst_module
from registry.db import models as m
from registry.db.database import Database
from registry.errors import InvalidAdapter, InvalidInput, ShapeMismatch, UnsupportedAdapter
from registry.formats import lowrank
from registry.formats.adapter import AdapterFile
from registry.formats.lora_factors import LoraFile
from registry.formats.peft import WEIGHTS_NAME
from registry.formats.safetensors import ReadRange
from registry.lifecycle.policies import effective_policy
from registry.storage.base import BlobStore

log = logging.getLogger(__name__)

# The most adapter weights (the promoted version's and the named productions' safetensors,
# together) one gate evaluation reads to compute missing pairs: 2 GiB is two dozen r=16
# all-linear adapters of an 8B model in bf16; anything larger is a job for
# `lorareg interference`.
MAX_GATE_BYTES = 2 * 1024**3


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


@dataclass(frozen=True)
class _Target:
    bound: float
    ref: str  # "ns/name:N" of the production version
    row: m.AdapterVersion


def _targets(
    session: Session, version: m.AdapterVersion, bounds: dict[str, float]
) -> list[_Target]:
    """The production versions the bounds name, each with its bound (none for the version's
    own adapter, a named adapter without production on the base, or the same content)."""
    own_ns, own_name = version.adapter.namespace.name, version.adapter.name
    out = []
    for target, bound in sorted(bounds.items()):
        ns, _, name = target.rpartition("/")
        ns = ns or own_ns
        if (ns, name) == (own_ns, own_name) or version.base_model is None:
            continue
        prod = _production(session, ns, name, version.base_model)
        if prod is None or prod.content_id == version.content_id:
            continue
        out.append(_Target(bound, f"{ns}/{name}:{prod.number}", prod))
    return out


def _weights_size(row: m.AdapterVersion) -> int:
    return sum(f.size for f in row.files if f.path == WEIGHTS_NAME)


def _cannot_compute(version: m.AdapterVersion, missing: list[m.AdapterVersion]) -> str | None:
    """Why the gate will not compute the missing pairs itself (None: it will)."""
    for row in (version, *missing):
        if row.kind != "adapter" or row.peft_type != "LORA":
            return f"{row.adapter.name}:{row.number} is not a LoRA adapter"
        if (row.config or {}).get("use_dora"):
            return f"{row.adapter.name}:{row.number} is DoRA, not a low-rank delta"
    total = _weights_size(version) + sum(_weights_size(r) for r in missing)
    if total > MAX_GATE_BYTES:
        return (
            f"the gate would read {total / 2**20:.0f} MiB of weights, above its bound of"
            f" {MAX_GATE_BYTES / 2**20:.0f} MiB"
        )
    return None


def interference_problems(
    session: Session, version: m.AdapterVersion, bounds: dict[str, float]
) -> list[str]:
    """Every bound of ``bounds`` (``name`` in the version's namespace, or ``ns/name``) the
    version passes or cannot be shown to meet, phrased for the user (empty: the gate opens).

    A named adapter with no production version for the version's base has nothing to
    interfere with, and the version's own adapter is never compared with itself."""
    ref = f"{version.adapter.namespace.name}/{version.adapter.name}:{version.number}"
    targets = _targets(session, version, bounds)
    cached = {t.ref: cached_modules(session, version.content_id, t.row.content_id) for t in targets}
    missing = [t.row for t in targets if cached[t.ref] is None]
    problems: list[str] = []
    for t in targets:
        modules = cached[t.ref]
        if modules is None:
            why = _cannot_compute(version, missing)
            problems.append(
                f"interference of {ref} with {t.ref} (production; bound {t.bound:g}) is not"
                f" computed{f' ({why})' if why else ''}; run `lorareg interference {ref} {t.ref}`"
            )
            continue
        module, cosine = worst_module(modules)
        if cosine > t.bound:
            problems.append(
                f"interference with {t.ref} (production) is {cosine:.3f} on {module},"
                f" above the bound {t.bound:g}"
            )
    return problems


@dataclass(frozen=True)
class _Stored:
    """What reading a version's weights needs, copied out of the session."""

    label: str
    content_id: str
    files: dict[str, tuple[str, int]]  # path -> (sha256, size)


def _stored(row: m.AdapterVersion) -> _Stored:
    label = f"{row.adapter.namespace.name}/{row.adapter.name}:{row.number}"
    return _Stored(label, row.content_id, {f.path: (f.sha256, f.size) for f in row.files})


def fill_interference(db: Database, store: BlobStore, version_id: int, *, to: str) -> int:
    """Compute and cache the pairs the interference bound of promoting the version to ``to``
    lacks (nothing when no bound applies); returns how many pairs were stored.

    Runs outside any promotion transaction. Pairs it will not compute (``_cannot_compute``)
    or cannot read (a refused adapter, modules of different shapes) are left missing:
    ``interference_problems`` then reports them as unmet, with the command to run."""
    with db.read() as s:
        row = s.get(m.AdapterVersion, version_id)
        if row is None or row.base_model is None:
            return 0
        _, rules = effective_policy(s, row.adapter.namespace.name, row.adapter.name)
        if to not in rules.stages or to == "archived" or not rules.max_interference:
            return 0
        targets = _targets(s, row, rules.max_interference)
        missing = [
            t.row for t in targets if cached_modules(s, row.content_id, t.row.content_id) is None
        ]
        if not missing or _cannot_compute(row, missing) is not None:
            return 0
        version, others = _stored(row), [_stored(r) for r in missing]
    try:
        docs = _compute(store, version, others)
    except (UnsupportedAdapter, ShapeMismatch, InvalidAdapter, InvalidInput) as exc:
        log.info("interference gate: %s: %s", version.label, exc)
        return 0
    store_pairs(db, docs)
    return len(docs)


def _files(store: BlobStore, stored: _Stored) -> dict[str, AdapterFile]:
    def reader(sha: str) -> ReadRange:
        return lambda offset, length: store.read_range(sha, offset, length)

    return {
        path: AdapterFile(path=path, size=size, read=reader(sha))
        for path, (sha, size) in stored.files.items()
    }


def _compute(
    store: BlobStore, version: _Stored, others: list[_Stored]
) -> dict[tuple[str, str], dict[str, list[float]]]:
    """Per other adapter, per shared module ``[inner, norm_sq_x, norm_sq_y]`` with x the
    smaller content id (the cache's orientation): one block row, module by module."""
    mine = LoraFile(_files(store, version), label=version.label)
    theirs = [LoraFile(_files(store, o), label=o.label) for o in others]
    docs: dict[tuple[str, str], dict[str, list[float]]] = {
        pair_key(version.content_id, o.content_id): {} for o in others
    }
    for module in sorted(mine.modules):
        holders = [(o, f) for o, f in zip(others, theirs, strict=True) if module in f.modules]
        if not holders:
            continue
        for o, f in holders:
            if f.shape(module) != mine.shape(module):
                raise ShapeMismatch(
                    f"{module} is {mine.shape(module)} in {version.label} but"
                    f" {f.shape(module)} in {o.label}"
                )
        b, a = mine.factors(module)
        cols = [f.factors(module) for _, f in holders]
        row = lowrank.cross_inner([b], [a], [c[0] for c in cols], [c[1] for c in cols])[0]
        nx = lowrank.norm_sq(b, a)
        for (o, _), (cb, ca), inner in zip(holders, cols, row, strict=True):
            ny = lowrank.norm_sq(cb, ca)
            flip = version.content_id > o.content_id
            doc = [float(inner), ny, nx] if flip else [float(inner), nx, ny]
            docs[pair_key(version.content_id, o.content_id)][module] = doc
    return docs
