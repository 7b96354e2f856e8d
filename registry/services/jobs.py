"""What a job worker runs besides merges: given to ``Worker(runners=...)`` by the edges that
start workers (``lorareg worker``, embedded ``lorareg serve``, ``--wait`` without a server).
The merge package cannot import the library (the library builds on merge's adapter
loading), so the kinds above it are handed in from here."""

from __future__ import annotations

from registry.merge.worker import JobRunner


def job_runners() -> dict[str, JobRunner]:
    """Every job kind other than ``merge``, by kind: compositions of the adapter library."""
    from registry.library.jobs import run_compose

    return {"compose": run_compose}
