"""Merge and job operations for both clients."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from registry.errors import Unavailable
from registry.timestamps import iso_z

if TYPE_CHECKING:  # only remote clients make requests; a local one never loads httpx
    import httpx

    from registry.runtime import Runtime

JobProgress = Callable[[dict[str, Any]], None]


class LocalMerge:
    rt: Runtime

    @property
    def actor(self) -> str:  # pragma: no cover - provided by LocalClient
        raise NotImplementedError

    def merge(self, refs: list[str], *, base: str, **options: Any) -> dict[str, Any]:
        from registry.merge.service import request_merge

        job, report = request_merge(self.rt, refs, base=base, actor=self.actor, **options)
        return {"job": job.to_json(), "interference": report}

    def workers(self) -> dict[str, Any]:
        from registry.merge import job_queue

        seen = job_queue.worker_last_seen(self.rt.db)
        return {
            "last_seen_at": iso_z(seen),
            "seconds_since_seen": round((job_queue.now() - seen).total_seconds(), 1)
            if seen
            else None,
            "in_process": False,
            "refusal": None,
        }

    def wait_job(
        self, job_id: int, *, progress: JobProgress | None = None, claim_timeout_s: float = 60.0
    ) -> dict[str, Any]:
        """Without a server, run the job in this process (``lorareg merge --wait``)."""
        from registry.merge import job_queue
        from registry.merge.worker import Worker
        from registry.services.jobs import job_runners

        worker = Worker(self.rt, lease_s=30.0, runners=job_runners())
        if progress is not None:
            done = {"stop": False}

            def watch() -> None:
                while not done["stop"]:
                    progress(job_queue.get_job(self.rt.db, job_id).to_json())
                    time.sleep(0.5)

            import threading

            t = threading.Thread(target=watch, daemon=True)
            t.start()
            try:
                return worker.run_one(job_id).to_json()
            finally:
                done["stop"] = True
                t.join(timeout=5)
        return worker.run_one(job_id).to_json()

    def jobs(self) -> list[dict[str, Any]]:
        from registry.services.jobs import list_jobs

        return [j.to_json() for j in list_jobs(self.rt.db)]

    def job(self, job_id: int) -> dict[str, Any]:
        from registry.merge import job_queue

        return job_queue.get_job(self.rt.db, job_id).to_json()

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        from registry.merge import job_queue

        return job_queue.cancel(self.rt.db, job_id, actor=self.actor).to_json()


class RemoteMerge:
    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:  # pragma: no cover
        raise NotImplementedError

    def merge(self, refs: list[str], *, base: str, **options: Any) -> dict[str, Any]:
        body = {
            "adapters": refs,
            "base": base,
            **{k: v for k, v in options.items() if v is not None},
        }
        return dict(self._call("POST", "/api/v1/merges", json=body).json())

    def workers(self) -> dict[str, Any]:
        return dict(self._call("GET", "/api/v1/workers").json())

    def wait_job(
        self, job_id: int, *, progress: JobProgress | None = None, claim_timeout_s: float = 60.0
    ) -> dict[str, Any]:
        """Poll the server until the job ends (a worker elsewhere runs it). A job nobody
        claims within ``claim_timeout_s`` while no worker shows signs of life is
        Unavailable, saying how to start one, instead of a wait without end."""
        from registry.merge import job_queue

        start = time.monotonic()
        while True:
            doc = self.job(job_id)
            if progress is not None:
                progress(doc)
            if doc["state"] in job_queue.TERMINAL:
                return doc
            waited = time.monotonic() - start
            if doc["state"] == "queued" and waited >= claim_timeout_s:
                _require_worker(job_id, waited, self.workers())
            time.sleep(0.5)

    def jobs(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/jobs").json())

    def job(self, job_id: int) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v1/jobs/{job_id}").json())

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        return dict(self._call("POST", f"/api/v1/jobs/{job_id}/cancel").json())


def _require_worker(job_id: int, waited: float, workers: dict[str, Any]) -> None:
    """Keep waiting while some worker showed life during the wait (busy with other jobs)."""
    seen = workers.get("seconds_since_seen")
    if seen is not None and seen < waited:
        return
    last = "ever" if seen is None else f"for {seen:.0f} s"
    raise Unavailable(
        f"job {job_id} is still queued after {waited:.0f} s: no merge worker has been seen"
        f" {last}; start one with `lorareg worker` on a machine with PyTorch and this"
        " server's LORAREG_DATABASE_URL and LORAREG_STORAGE_URL (the job stays queued"
        " until then)"
    )
