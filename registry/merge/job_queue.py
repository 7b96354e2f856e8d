"""The job queue (merges, compositions) in the catalog: enqueue, claim, heartbeat, finish, cancel.

A worker claims the oldest queued job, or a running one whose lease expired (its worker
died), with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite's write transactions are
exclusive anyway). It renews its lease by heartbeat; a heartbeat that finds the job no
longer its own (lease lost, or cancel requested) tells the worker to stop. Finishing
checks ownership in the same transaction that records the output, so a job completes
exactly once even when a slow worker and its replacement both reach the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from registry.access import visible_jobs
from registry.db import models as m
from registry.db.database import Database
from registry.domain import TERMINAL_JOB_STATES, JobState
from registry.errors import Conflict, NotFound
from registry.timestamps import iso_z

TERMINAL: tuple[str, ...] = TERMINAL_JOB_STATES


@dataclass(frozen=True)
class JobInfo:
    id: int
    kind: str
    state: JobState
    spec: dict[str, Any]
    progress: float
    status: dict[str, Any]
    attempts: int
    error: str | None
    result: dict[str, Any] | None
    output: str | None
    worker_id: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    namespace: str = ""  # the output's: the job belongs to it

    def to_json(self) -> dict[str, Any]:
        doc = dict(self.__dict__)
        for k in ("created_at", "started_at", "finished_at"):
            doc[k] = iso_z(doc[k])
        return doc


def now() -> datetime:
    return datetime.now(UTC)


# What time it is for lease arithmetic: ``now`` in production; tests hand in a later one
# to see a lease expire without waiting for it.
Clock = Callable[[], datetime]


def job_info(session: Session, row: m.Job) -> JobInfo:
    output = None
    if row.output_version_id is not None:
        v = session.get(m.AdapterVersion, row.output_version_id)
        if v is not None:
            output = f"{v.adapter.namespace.name}/{v.adapter.name}:{v.number}"
    return JobInfo(
        id=row.id,
        kind=row.kind,
        state=JobState(row.state),
        namespace=row.namespace,
        spec=dict(row.spec),
        progress=row.progress,
        status=dict(row.status or {}),
        attempts=row.attempts,
        error=row.error,
        result=row.result,
        output=output,
        worker_id=row.worker_id,
        created_by=row.created_by,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def enqueue(
    db: Database,
    spec: dict[str, Any],
    *,
    actor: str,
    max_attempts: int = 3,
    kind: str = "merge",
) -> JobInfo:
    """Queue a job of ``kind`` (``merge``, ``compose``: see ``worker.Worker.run``)."""
    out_ns, _, out_name = str(spec.get("output", "")).partition("/")
    touched = {out_ns, *(str(i.get("repo", "")).partition("/")[0] for i in spec.get("inputs", []))}
    with db.write() as s:
        row = m.Job(
            kind=kind,
            namespace=out_ns,
            spec=spec,
            created_by=actor,
            max_attempts=max_attempts,
            status={},
        )
        s.add(row)
        s.flush()
        s.add_all(m.JobNamespace(job_id=row.id, namespace=ns) for ns in sorted(touched) if ns)
        s.add(
            m.Event(
                kind="job.queued",
                namespace=out_ns or None,
                adapter=out_name or None,
                actor=actor,
                payload={"job": row.id},
            )
        )
        s.flush()
        return job_info(s, row)


def get_job(db: Database, job_id: int, *, namespaces: frozenset[str] | None = None) -> JobInfo:
    """The job; NotFound also when a viewer scoped to ``namespaces`` may not see it."""
    q = select(m.Job).where(m.Job.id == job_id)
    if (visible := visible_jobs(namespaces)) is not None:
        q = q.where(visible)
    with db.read() as s:
        row = s.scalar(q)
        if row is None:
            raise NotFound(f"no job {job_id}; `lorareg jobs` lists them")
        return job_info(s, row)


def job_page(
    session: Session,
    *,
    state: str | None = None,
    before: int | None = None,
    limit: int = 100,
    namespaces: frozenset[str] | None = None,
) -> tuple[list[JobInfo], bool]:
    """Jobs newest first, keyset on id (``ix_jobs_state`` when filtered by ``state``), and
    whether older ones follow. A scoped viewer's filter runs in SQL (``ix_jobs_namespace``),
    before the LIMIT, so every page is full."""
    q = select(m.Job)
    if (visible := visible_jobs(namespaces)) is not None:
        q = q.where(visible)
    if state is not None:
        q = q.where(m.Job.state == state)
    if before is not None:
        q = q.where(m.Job.id < before)
    rows = list(session.scalars(q.order_by(m.Job.id.desc()).limit(limit + 1)).all())
    return [job_info(session, r) for r in rows[:limit]], len(rows) > limit


def claim(
    db: Database,
    worker_id: str,
    *,
    lease_s: float,
    job_id: int | None = None,
    clock: Clock = now,
) -> JobInfo | None:
    """Take the next runnable job (or ``job_id``) for ``worker_id``; None when there is none.

    A job whose lease expired goes back to work with one more attempt; past
    ``max_attempts`` it fails instead of looping forever on a job that kills workers.
    """
    t = clock()
    with db.write() as s:
        q = (
            select(m.Job)
            .where(
                or_(
                    m.Job.state == "queued",
                    (m.Job.state == "running") & (m.Job.lease_expires_at < t),
                )
            )
            .order_by(m.Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if job_id is not None:
            q = q.where(m.Job.id == job_id)
        row = s.scalar(q)
        if row is None:
            return None
        if row.cancel_requested:
            finish(s, row, "cancelled", error="cancelled before it ran")
            return None
        if row.attempts >= row.max_attempts:
            finish(
                s,
                row,
                "failed",
                error=f"gave up after {row.attempts} attempts"
                f" (workers died or lost their lease); last worker {row.worker_id}",
            )
            return None
        row.state = "running"
        row.worker_id = worker_id
        row.attempts += 1
        row.started_at = row.started_at or t
        row.heartbeat_at = t
        row.lease_expires_at = t + timedelta(seconds=lease_s)
        s.add(_event(row, "job.started", worker_id, {"attempt": row.attempts}))
        s.flush()
        return job_info(s, row)


def heartbeat(
    db: Database,
    job_id: int,
    worker_id: str,
    *,
    lease_s: float,
    progress: float,
    status: dict[str, Any],
    clock: Clock = now,
) -> bool:
    """Renew the lease and publish progress; False when the worker must stop (the job was
    cancelled or taken over)."""
    t = clock()
    with db.write() as s:
        row = s.get(m.Job, job_id, with_for_update=True)
        if row is None or row.state != "running" or row.worker_id != worker_id:
            return False
        if row.cancel_requested:
            return False
        row.heartbeat_at = t
        row.lease_expires_at = t + timedelta(seconds=lease_s)
        row.progress = max(0.0, min(1.0, progress))
        row.status = status
        return True


def owns(session: Session, job_id: int, worker_id: str, *, cancel_ok: bool = False) -> m.Job | None:
    """The job row, locked, if ``worker_id`` still holds it (and, unless ``cancel_ok``, no
    cancel was requested); else None."""
    row = session.get(m.Job, job_id, with_for_update=True)
    if row is None or row.state != "running" or row.worker_id != worker_id:
        return None
    if row.cancel_requested and not cancel_ok:
        return None
    return row


def fail(db: Database, job_id: int, worker_id: str, error: str, *, cancelled: bool = False) -> bool:
    with db.write() as s:
        row = owns(s, job_id, worker_id, cancel_ok=True)
        if row is None:
            return False
        if row.cancel_requested:
            cancelled, error = True, "cancelled"
        finish(s, row, "cancelled" if cancelled else "failed", error=error)
        return True


def cancel(db: Database, job_id: int, *, actor: str) -> JobInfo:
    """Cancel a queued job now, or ask a running one to stop (its worker sees it at the next
    heartbeat and cleans up)."""
    with db.write() as s:
        row = s.get(m.Job, job_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no job {job_id}")
        if row.state in TERMINAL:
            raise Conflict(f"job {job_id} already {row.state}; nothing to cancel")
        row.cancel_requested = True
        if row.state == "queued":
            finish(s, row, "cancelled", error=f"cancelled by {actor}")
        s.add(_event(row, "job.cancel_requested", actor, {}))
        s.flush()
        return job_info(s, row)


def worker_last_seen(db: Database) -> datetime | None:
    """When any merge worker last claimed, heartbeated or finished a job; None if never.

    Idle workers leave no trace, so this answers "is anyone working the queue" only
    together with a queued job that stays unclaimed (workers poll every second or so).
    """
    with db.read() as s:
        beat = s.scalar(select(func.max(m.Job.heartbeat_at)))
        done = s.scalar(select(func.max(m.Job.finished_at)).where(m.Job.worker_id.is_not(None)))
    seen = [t for t in (beat, done) if t is not None]
    return max(seen) if seen else None


def finish(s: Session, row: m.Job, state: str, *, error: str | None = None) -> None:
    row.state = state
    row.error = error
    row.finished_at = now()
    row.lease_expires_at = None
    s.add(_event(row, f"job.{state}", row.worker_id or row.created_by, {"error": error}))


def _event(row: m.Job, kind: str, actor: str, payload: dict[str, Any]) -> m.Event:
    out_ns, _, out_name = str(row.spec.get("output", "")).partition("/")
    return m.Event(
        kind=kind,
        namespace=out_ns or None,
        adapter=out_name or None,
        actor=actor,
        payload={"job": row.id, **payload},
    )
