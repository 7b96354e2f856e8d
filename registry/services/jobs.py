"""Jobs (merges, compositions), once for every edge: the listings and one job, and what a
job worker runs besides merges.

``job_runners`` is given to ``Worker(runners=...)`` by the edges that start workers
(``lorareg worker``, embedded ``lorareg serve``, ``--wait`` without a server). The merge
package cannot import the library (the library builds on merge's adapter loading), so the
kinds above it are handed in from here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from registry.db.database import Database
from registry.merge import job_queue
from registry.merge.job_queue import JobInfo

if TYPE_CHECKING:  # the worker imports torch; the listings must work without it
    from registry.merge.worker import JobRunner

STATES = ("queued", "running", "succeeded", "failed", "cancelled")


class JobPage(BaseModel):
    """Jobs newest first; ``next_before`` is the key of the next (older) page."""

    model_config = ConfigDict(frozen=True)

    items: list[JobInfo]
    next_before: int | None
    has_prev: bool


def job_page(
    db: Database,
    *,
    state: str | None = None,
    before: int | None = None,
    limit: int = 100,
    visible: frozenset[str] | None = None,
) -> JobPage:
    """A page of the jobs a viewer scoped to ``visible`` namespaces (None: all) may see,
    newest first, older than ``before``, in ``state`` when given."""
    with db.read() as s:
        items, more = job_queue.job_page(
            s, state=state, before=before, limit=limit, namespaces=visible
        )
    return JobPage(
        items=items,
        next_before=items[-1].id if more and items else None,
        has_prev=before is not None,
    )


def list_jobs(db: Database, *, visible: frozenset[str] | None = None) -> list[JobInfo]:
    """The newest 100 jobs the viewer may see (``lorareg jobs``, ``GET /api/v1/jobs``)."""
    return job_page(db, visible=visible).items


def get_job(db: Database, job_id: int, *, visible: frozenset[str] | None = None) -> JobInfo:
    """The job; NotFound also when a viewer scoped to ``visible`` may not see it."""
    return job_queue.get_job(db, job_id, namespaces=visible)


def job_runners() -> dict[str, JobRunner]:
    """Every job kind other than ``merge``, by kind: compositions of the adapter library."""
    from registry.library.compose_jobs import run_compose

    return {"compose": run_compose}
