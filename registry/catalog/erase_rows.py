"""The catalog rows an erasure removes or rewrites, one kind per function; all run inside
``erase``'s write transaction (see ``registry.catalog.erase`` for the whole story)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from registry.db import models as m
from registry.errors import InProduction
from registry.principal import Principal

if TYPE_CHECKING:
    from registry.catalog.erase import Target

CHUNK = 500  # IN-list size
SCRUBBED = {"erased": True}


def changed(result: Any) -> int:
    """Rows an UPDATE or DELETE touched."""
    return int(getattr(result, "rowcount", 0) or 0)


def refuse_production(
    s: Session, versions_q: Select[Any], names: dict[int, str], *, force: bool
) -> None:
    """InProduction (naming up to five) unless ``force``."""
    serving = s.execute(
        select(m.AdapterVersion.adapter_id, m.AdapterVersion.number, m.AdapterVersion.base_model)
        .where(m.AdapterVersion.id.in_(versions_q), m.AdapterVersion.stage == "production")
        .order_by(m.AdapterVersion.adapter_id, m.AdapterVersion.number)
        .limit(5)
    ).all()
    if serving and not force:
        ns = s.scalar(select(m.Namespace.name).join(m.Adapter).where(m.Adapter.id == serving[0][0]))
        listed = ", ".join(f"{ns}/{names[a]}:{n} (base {b})" for a, n, b in serving)
        raise InProduction(
            f"in production: {listed}; promote another version first, or pass --force to"
            " erase it anyway (serving systems that resolve it then get 404)"
        )


def derived(s: Session, versions_q: Select[Any], principal: Principal) -> list[str]:
    """Merged versions that stay although built from erased ones (those ``principal`` sees)."""
    rows = s.execute(
        select(m.Namespace.name, m.Adapter.name, m.AdapterVersion.number)
        .select_from(m.MergeInput)
        .join(m.AdapterVersion, m.AdapterVersion.id == m.MergeInput.output_id)
        .join(m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id)
        .join(m.Namespace, m.Namespace.id == m.Adapter.namespace_id)
        .where(m.MergeInput.input_id.in_(versions_q), m.MergeInput.output_id.not_in(versions_q))
        .distinct()
    ).all()
    return sorted(f"{ns}/{name}:{n}" for ns, name, n in rows if principal.sees(ns))


def delete_version_rows(s: Session, versions_q: Select[Any]) -> None:
    """The versions and every row hanging off them (lineage both ways, aliases, checks,
    evals, tags, files); children of a survivor lose their parent, jobs their output."""
    ids = list(s.scalars(versions_q))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        in_chunk = m.MergeInput.input_id.in_(chunk) | m.MergeInput.output_id.in_(chunk)
        s.execute(delete(m.MergeInput).where(in_chunk))
        for model in (m.Alias, m.CheckResult, m.EvalScore, m.Tag, m.VersionFile):
            s.execute(delete(model).where(model.version_id.in_(chunk)))
        s.execute(
            update(m.AdapterVersion)
            .where(m.AdapterVersion.parent_id.in_(chunk))
            .values(parent_id=None)
        )
        s.execute(
            update(m.Job).where(m.Job.output_version_id.in_(chunk)).values(output_version_id=None)
        )
        s.execute(delete(m.AdapterVersion).where(m.AdapterVersion.id.in_(chunk)))


def drop_orphan_blobs(s: Session, candidates: set[str]) -> tuple[dict[str, int], int]:
    """Delete the blob rows among ``candidates`` no version references any more:
    ({sha256: size} to delete from storage after the commit, how many stay shared)."""
    orphans: dict[str, int] = {}
    shared = 0
    ordered = sorted(candidates)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        still = set(s.scalars(select(m.VersionFile.sha256).where(m.VersionFile.sha256.in_(chunk))))
        gone = [sha for sha in chunk if sha not in still]
        shared += len(chunk) - len(gone)
        if gone:
            sizes = dict(
                s.execute(select(m.Blob.sha256, m.Blob.size).where(m.Blob.sha256.in_(gone))).all()
            )
            s.execute(delete(m.Blob).where(m.Blob.sha256.in_(gone)))
            # Upload records of erased weights would let a later commit claim them.
            s.execute(delete(m.Upload).where(m.Upload.sha256.in_(gone)))
            orphans.update({sha: int(sizes.get(sha, 0)) for sha in gone})
    return orphans, shared


def scrub_events(s: Session, target: Target) -> int:
    where = [m.Event.namespace == target.namespace]
    if target.repo is not None:
        where.append(m.Event.adapter == target.repo.name)
    if target.number is not None:
        where.append(m.Event.version == target.number)
    return changed(s.execute(update(m.Event).where(*where).values(payload=SCRUBBED)))


def delete_jobs(s: Session, target: Target) -> int:
    """Merge jobs that name what is erased: queued ones would bring it back."""

    def names_it(spec: dict[str, object]) -> bool:
        refs = [(str(i.get("repo", "")), i.get("number")) for i in _inputs(spec)]
        if target.number is not None:
            repo = str(target.repo)
            return any(r == repo and n == target.number for r, n in refs)
        repos = [str(spec.get("output", ""))] + [r for r, _ in refs]
        if target.repo is None:
            return any(r.split("/", 1)[0] == target.namespace for r in repos)
        return str(target.repo) in repos

    # job_namespaces lists every namespace a job reads or writes: only those jobs are read.
    candidates = (
        select(m.Job.id, m.Job.spec)
        .join(m.JobNamespace, m.JobNamespace.job_id == m.Job.id)
        .where(m.JobNamespace.namespace == target.namespace)
    )
    doomed = [jid for jid, spec in s.execute(candidates) if names_it(spec or {})]
    for start in range(0, len(doomed), CHUNK):
        s.execute(delete(m.Job).where(m.Job.id.in_(doomed[start : start + CHUNK])))
    return len(doomed)


def _inputs(spec: dict[str, object]) -> list[dict[str, object]]:
    items = spec.get("inputs")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def delete_policies(s: Session, target: Target) -> int:
    if target.repo is not None:
        q = delete(m.Policy).where(m.Policy.target == str(target.repo))
    else:
        q = delete(m.Policy).where(
            (m.Policy.target == target.namespace)
            | (func.substr(m.Policy.target, 1, len(target.namespace) + 1) == target.namespace + "/")
        )
    return changed(s.execute(q))


def narrow_tokens(s: Session, namespace: str) -> tuple[int, int]:
    """Tokens scoped to this namespace alone go; others lose it from their scope (an empty
    scope would mean every namespace, so such a token is removed, never emptied)."""
    removed = narrowed = 0
    for row in s.scalars(select(m.Token).where(m.Token.namespaces.is_not(None))):
        scope = list(row.namespaces or [])
        if namespace not in scope:
            continue
        rest = [n for n in scope if n != namespace]
        if rest:
            row.namespaces = rest
            narrowed += 1
        else:
            s.delete(row)
            removed += 1
    s.flush()
    return removed, narrowed
