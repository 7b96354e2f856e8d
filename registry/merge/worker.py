"""The job worker: claims jobs (merges, compositions), runs them, stores the output, finishes
exactly once.

``lorareg worker`` runs ``Worker.run_forever``; embedded ``lorareg serve`` runs one in a
thread; ``lorareg merge --wait`` without a server runs its own job with ``run_one``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from registry.catalog.manifest import sha256_file
from registry.catalog.push import PushRequest, VersionFields, record_version
from registry.catalog.refs import parse_repo
from registry.db import models as m
from registry.domain import FileEntry
from registry.errors import LoraregError
from registry.merge import job_queue
from registry.merge.engine import MergeResult, merge_adapters
from registry.merge.job_queue import JobInfo
from registry.merge.service import materialize_adapter, materialize_base
from registry.merge.stream import MergeCancelled, MergeProgress
from registry.observability import metrics
from registry.runtime import Runtime

# Runs one claimed job of a kind other than "merge"; False when the job stopped being ours.
JobRunner = Callable[[Runtime, JobInfo, str], bool]

log = logging.getLogger("lorareg.worker")
_OWNER = "owner"  # "<hostname>:<pid>" of the process working in a job folder
_ACTIVE: set[Path] = set()  # job folders this process is working in now
_ACTIVE_LOCK = threading.Lock()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class Worker:
    def __init__(
        self,
        rt: Runtime,
        *,
        worker_id: str | None = None,
        lease_s: float = 30.0,
        poll_s: float = 1.0,
        runners: Mapping[str, JobRunner] | None = None,
        clock: job_queue.Clock = job_queue.now,
    ) -> None:
        """``runners``: how to run each job kind other than ``merge`` (the callers above the
        merge package pass ``registry.services.jobs.job_runners()``: compositions).
        ``clock``: the time its leases are reckoned by (tests pass a later one)."""
        self.rt = rt
        self.runners = dict(runners or {})
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.clock = clock
        self.stop = threading.Event()

    @property
    def work_root(self) -> Path:
        """Where jobs unpack inputs and write their output: the cache disk, not ``/tmp``
        (often RAM-backed, and a merged model is the size of the base)."""
        return self.rt.settings.effective_cache_dir / "jobs"

    def sweep_orphans(self) -> int:
        """Delete the work folders of dead workers on this host (kill -9, OOM, a container
        restart): each can hold a whole model. A folder is orphaned when its owner's pid
        is gone, or is this process's pid (reused after a restart) but no job here runs
        in it. Returns the number removed."""
        removed = 0
        host = socket.gethostname()
        for folder in self.work_root.glob("job-*"):
            try:
                owner_host, _, pid = (folder / _OWNER).read_text().partition(":")
            except OSError:
                continue  # being created, or not ours to judge
            if owner_host != host or not pid.isdigit():
                continue
            mine = int(pid) == os.getpid()
            with _ACTIVE_LOCK:
                orphan = folder not in _ACTIVE if mine else not _alive(int(pid))
                if orphan:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
        if removed:
            log.info("removed %d work folders of dead workers", removed)
        return removed

    def run_forever(self) -> None:
        self.sweep_orphans()
        while not self.stop.is_set():
            try:
                job = job_queue.claim(
                    self.rt.db, self.worker_id, lease_s=self.lease_s, clock=self.clock
                )
            except LoraregError:
                log.exception("cannot claim jobs; retrying")
                job = None
            if job is None:
                self.stop.wait(self.poll_s)
                continue
            self.run(job)

    def run_one(self, job_id: int) -> JobInfo:
        """Claim and run one given job (``lorareg merge --wait`` without a server)."""
        self.sweep_orphans()
        job = job_queue.claim(
            self.rt.db, self.worker_id, lease_s=self.lease_s, job_id=job_id, clock=self.clock
        )
        if job is not None:
            self.run(job)
        return job_queue.get_job(self.rt.db, job_id)

    def run(self, job: JobInfo) -> None:
        """Run a claimed job to an end state (or leave it to another worker if we lose it)."""
        beat = _Heartbeat(self, job.id)
        self.work_root.mkdir(parents=True, exist_ok=True)
        with _ACTIVE_LOCK:
            work = Path(tempfile.mkdtemp(prefix=f"job-{job.id}-", dir=self.work_root))
            (work / _OWNER).write_text(f"{socket.gethostname()}:{os.getpid()}")
            _ACTIVE.add(work)
        spec = job.spec
        log.info(
            "claimed job %s (attempt %s): %s of %s into %s",
            job.id,
            job.attempts,
            spec.get("method"),
            ", ".join(str(i.get("ref")) for i in spec.get("inputs", [])),
            spec.get("base"),
        )
        started, outcome = time.monotonic(), "failed"
        try:
            beat.start()
            if not self._execute(job, work, beat):
                # Cancelled (or taken over) at the last moment: the output blobs are
                # unreferenced and gc collects them.
                job_queue.fail(self.rt.db, job.id, self.worker_id, "cancelled", cancelled=True)
                log.info("job %s cancelled", job.id)
                outcome = "cancelled"
            else:
                log.info("job %s succeeded -> %s", job.id, spec.get("output"))
                outcome = "succeeded"
        except MergeCancelled:
            job_queue.fail(self.rt.db, job.id, self.worker_id, "cancelled", cancelled=True)
            log.info("job %s cancelled", job.id)
            outcome = "cancelled"
        except LoraregError as exc:
            job_queue.fail(self.rt.db, job.id, self.worker_id, exc.message)
            log.warning("job %s failed: %s", job.id, exc.message)
        except Exception as exc:  # a bug must fail the job, not kill the worker
            log.exception("job %s crashed", job.id)
            job_queue.fail(
                self.rt.db, job.id, self.worker_id, f"internal error: {type(exc).__name__}: {exc}"
            )
        finally:
            metrics.WORKER_JOBS.labels(outcome).inc()
            metrics.WORKER_JOB_DURATION.observe(time.monotonic() - started)
            beat.stop()
            shutil.rmtree(work, ignore_errors=True)
            with _ACTIVE_LOCK:
                _ACTIVE.discard(work)

    def _execute(self, job: JobInfo, work: Path, beat: _Heartbeat) -> bool:
        """Run the job by its kind; False when it stopped being ours before it finished."""
        if job.kind != "merge":
            runner = self.runners.get(job.kind)
            if runner is None:
                raise LoraregError(
                    f"this worker cannot run {job.kind} jobs; upgrade or restart `lorareg worker`"
                )
            if beat.lost.is_set():
                raise MergeCancelled()
            return runner(self.rt, job, self.worker_id)
        result = self._merge(job, work, beat)
        if beat.lost.is_set():
            raise MergeCancelled()
        files = self._store_output(result.out_dir, result.shard_sha256)
        return self._finish(job, files, result)

    def _merge(self, job: JobInfo, work: Path, beat: _Heartbeat) -> MergeResult:
        spec = job.spec
        base_dir = materialize_base(self.rt, spec["base"])
        from registry.catalog.queries import get_version
        from registry.catalog.refs import Ref

        inputs = []
        for i, item in enumerate(spec["inputs"]):
            with self.rt.db.read() as s:
                v = get_version(s, Ref(parse_repo(item["repo"]), number=item["number"]))
            inputs.append(materialize_adapter(self.rt, v, work / f"adapter-{i}"))
        return merge_adapters(
            base_dir,
            inputs,
            work / "out",
            method=spec["method"],
            weights=[item["weight"] for item in spec["inputs"]],
            svd_rank=spec.get("svd_rank"),
            device=spec.get("device") or "auto",
            dtype=spec.get("dtype"),
            progress=beat.report,
            should_cancel=beat.lost.is_set,
            # The shards go into the store as written (below): durable before visible.
            durable=True,
        )

    def _store_output(self, out: Path, shard_sha256: dict[str, str]) -> list[FileEntry]:
        """Store every output file as a content-addressed blob (before any row commits).

        The shards were hashed while the engine wrote them and flushed to disk, so a local
        store takes each by a rename: no byte is read again. Small files (config, index)
        are hashed here. S3 uploads the files, verifying the hash as it sends them.
        """
        adopt = getattr(self.rt.store, "adopt_file", None)
        entries = []
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            rel = path.relative_to(out).as_posix()
            size = path.stat().st_size
            sha = shard_sha256.get(rel)
            if sha is not None and adopt is not None:
                adopt(sha, path)
            else:
                sha = sha or sha256_file(path)
                self.rt.store.put_file(sha, path)
            entries.append(FileEntry(path=rel, sha256=sha, size=size))
        return entries

    def _finish(self, job: JobInfo, files: list[FileEntry], result: MergeResult) -> bool:
        """Record the output and succeed, in one transaction, if the job is still ours."""
        spec = job.spec
        doc = result.to_dict()
        doc.pop("out_dir", None)
        with self.rt.db.write() as s:
            row = job_queue.owns(s, job.id, self.worker_id)
            if row is None:
                return False
            req = PushRequest(
                repo=parse_repo(spec["output"]),
                files=files,
                author=job.created_by,
                description=f"merged by job {job.id}: {spec['method']} of "
                + ", ".join(f"{i['ref']}x{i['weight']:g}" for i in spec["inputs"]),
                regions=self.rt.settings.replica_regions,
            )
            fields = VersionFields(
                base_model=spec["base"],
                peft_type="MERGED",
                r=0,
                lora_alpha=0.0,
                target_modules=[],
                kind="merged",
                config={
                    "method": spec["method"],
                    "job": job.id,
                    "inputs": spec["inputs"],
                    "svd_rank": spec.get("svd_rank"),
                },
            )
            version, _ = record_version(s, req, fields)
            known = set(
                s.scalars(select(m.MergeInput.input_id).where(m.MergeInput.output_id == version.id))
            )
            for pos, item in enumerate(spec["inputs"]):
                inp = _version_id(s, item["repo"], item["number"])
                if inp is not None and inp not in known:
                    known.add(inp)
                    s.add(
                        m.MergeInput(
                            output_id=version.id, input_id=inp, weight=item["weight"], position=pos
                        )
                    )
            row.output_version_id = version.id
            row.result = doc
            row.progress = 1.0
            job_queue.finish(s, row, "succeeded")
            return True


def _version_id(s: Any, repo: str, number: int) -> int | None:
    r = parse_repo(repo)
    return s.scalar(
        select(m.AdapterVersion.id)
        .join(m.Adapter)
        .join(m.Namespace)
        .where(
            m.Namespace.name == r.namespace,
            m.Adapter.name == r.name,
            m.AdapterVersion.number == number,
        )
    )


class _Heartbeat:
    """Renews the lease every third of it and publishes progress; sets ``lost`` when the job
    is cancelled or taken over, which makes the engine stop at its next chunk."""

    def __init__(self, worker: Worker, job_id: int) -> None:
        self.worker = worker
        self.job_id = job_id
        self.lost = threading.Event()
        self._done = threading.Event()
        self._progress: tuple[float, dict[str, Any]] = (0.0, {"phase": "preparing"})
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def report(self, p: MergeProgress) -> None:
        rate = p.rate
        eta = (p.bytes_total - p.bytes_done) / rate if rate > 0 else None
        self._progress = (
            p.fraction,
            {
                "phase": "merging",
                "shard": p.shard,
                "shards_done": p.shards_done,
                "shards_total": p.shards_total,
                "bytes_done": p.bytes_done,
                "bytes_total": p.bytes_total,
                "rate_bytes_s": rate,
                "eta_s": eta,
            },
        )

    def _beat(self) -> None:
        frac, status = self._progress
        try:
            ok = job_queue.heartbeat(
                self.worker.rt.db,
                self.job_id,
                self.worker.worker_id,
                lease_s=self.worker.lease_s,
                progress=frac,
                status=status,
                clock=self.worker.clock,
            )
        except LoraregError:
            return  # database hiccup: try again next beat; the lease has slack
        if not ok:
            self.lost.set()

    def _run(self) -> None:
        interval = max(0.2, min(self.worker.lease_s / 3, 2.0))
        while not self._done.wait(interval):
            self._beat()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)
