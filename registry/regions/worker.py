"""Replication: copy each needed blob from the primary to ``replicate`` regions, and
record when blobs appear in ``external`` regions.

Each round, per region: lease up to ``batch`` due copies (``copies.claim_due``), then,
outside any transaction, copy (streamed from the primary, sha256-verified by the
regional store's put, multipart on S3) or look (a HEAD of the regional object), and
record the outcome. A failure is retried with exponential backoff; a region whose store
is down gives back the rest of its batch at once. Several workers share the load: a copy
is leased to one worker at a time, and a dead worker's lease expires.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import BinaryIO, cast

from registry.db.database import Database
from registry.errors import BlobNotFound, ChecksumMismatch, LoraregError, StorageUnavailable
from registry.observability.metrics import REGION_COPIES
from registry.regions import copies
from registry.regions.router import RegionHealth
from registry.regions.stores import Region, RegionSet

log = logging.getLogger("lorareg.regions")


class _ChunkReader:
    """A read(n) file over an iterator of byte chunks (what put_stream consumes)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        parts = [self._buf] if self._buf else []
        have = len(self._buf)
        while n < 0 or have < n:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)  # one join per read: parts are large, chunks 1 MiB
        if n < 0 or n >= len(data):
            self._buf = b""
            return data
        self._buf = data[n:]
        return data[:n]


def _verify_existing(region: Region, sha256: str, size: int) -> bool:
    """True when the object already at the blob's key hashes to its name."""
    digest = hashlib.sha256()
    total = 0
    for chunk in region.store.iter_bytes(sha256):
        digest.update(chunk)
        total += len(chunk)
    return total == size and digest.hexdigest() == sha256


class ReplicationWorker:
    """Copies and checks regional copies until ``stop`` is set (see the module docstring).

    ``retry_base_s``/``retry_cap_s``: the backoff after a failed copy; ``check_base_s``/
    ``check_cap_s``: how often an external region is asked again for a blob not there yet.
    """

    def __init__(
        self,
        regions: RegionSet,
        db: Database,
        *,
        worker_id: str | None = None,
        lease_s: float = 300.0,
        interval_s: float = 1.0,
        batch: int = 8,
        retry_base_s: float = 2.0,
        retry_cap_s: float = 600.0,
        check_base_s: float = 5.0,
        check_cap_s: float = 120.0,
        adopt_every_s: float = 60.0,
        health: RegionHealth | None = None,
    ) -> None:
        self.regions = regions
        self.db = db
        self.worker_id = (
            worker_id or f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )[:64]
        self.lease_s = lease_s
        self.interval_s = interval_s
        self.batch = batch
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self.check_base_s = check_base_s
        self.check_cap_s = check_cap_s
        self.adopt_every_s = adopt_every_s
        self.health = health or RegionHealth()
        self.stop = threading.Event()
        self._adopted_at: float | None = None

    def run_forever(self) -> None:
        """Rounds until ``stop``; an idle round waits ``interval_s``. Never raises."""
        while not self.stop.is_set():
            try:
                handled = self.run_once()
            except Exception:  # a broken round (database down) must not end the loop
                log.exception("replication round failed; retrying")
                handled = 0
            if handled == 0:
                self.stop.wait(self.interval_s)

    def run_once(self) -> int:
        """One round over every non-primary region; the number of copies handled."""
        replicas = [r.name for r in self.regions.replicas()]
        if not replicas:
            return 0
        now = time.monotonic()
        if self._adopted_at is None or now - self._adopted_at >= self.adopt_every_s:
            self._adopted_at = now
            adopted = copies.adopt_unrecorded(self.db, replicas)
            if adopted:
                log.info("recorded %d needed copies of blobs pushed before their region", adopted)
        handled = 0
        for region in self.regions.replicas():
            if self.stop.is_set():
                break
            claims = copies.claim_due(
                self.db, region.name, owner=self.worker_id, lease_s=self.lease_s, limit=self.batch
            )
            for i, claim in enumerate(claims):
                handled += 1
                down = self._handle(region, claim)
                if down is not None:  # the rest of this batch would fail the same way
                    for rest in claims[i + 1 :]:
                        self._failed(region, rest, down)
                    handled += len(claims) - i - 1
                    break
        return handled

    def _handle(self, region: Region, claim: copies.Claim) -> str | None:
        """Copy or check one blob; the error when the region's store is unavailable."""
        try:
            if region.mode == "external":
                self._check(region, claim)
            else:
                self._copy(region, claim)
        except StorageUnavailable as exc:
            self.health.mark_down(region.name)
            self._failed(region, claim, exc.message)
            return exc.message
        except LoraregError as exc:
            self._failed(region, claim, exc.message)
        except Exception as exc:  # one bad blob must not stop the others
            log.exception("copy of %s to %s failed", claim.sha256, region.name)
            self._failed(region, claim, f"error: {type(exc).__name__}: {exc}")
        return None

    def _copy(self, region: Region, claim: copies.Claim) -> None:
        sha = claim.sha256
        if region.store.exists(sha):
            # Write-once stores keep what is there: read it back before trusting it.
            if _verify_existing(region, sha, claim.size):
                self._present(region, claim, "present")
                return
            log.warning("copy of %s in %s does not match its name; replacing it", sha, region.name)
            region.store.delete(sha)
        primary = self.regions.primary.store
        try:
            chunks = primary.iter_bytes(sha, chunk_size=1024 * 1024)
        except BlobNotFound:
            raise BlobNotFound(f"blob {sha} is missing from the primary store") from None
        reader = cast(BinaryIO, _ChunkReader(iter(chunks)))
        try:
            region.store.put_stream(sha, reader, size=claim.size)
        except ChecksumMismatch as exc:
            raise ChecksumMismatch(
                f"the primary's bytes of {sha[:12]} do not match their name: {exc.message}"
            ) from None
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        self._present(region, claim, "copied")

    def _check(self, region: Region, claim: copies.Claim) -> None:
        try:
            size = region.store.size(claim.sha256)
        except BlobNotFound:
            size = None
        if size == claim.size:
            self._present(region, claim, "present")
            return
        REGION_COPIES.labels(region.name, "absent").inc()
        error = None if size is None else f"object has {size} bytes, expected {claim.size}"
        wait = copies.backoff_s(claim.attempts, base_s=self.check_base_s, cap_s=self.check_cap_s)
        copies.mark_failed(
            self.db,
            claim.sha256,
            region.name,
            owner=self.worker_id,
            error=error or "",
            retry_in_s=wait,
            state="missing" if size is None else "failed",
        )

    def _present(self, region: Region, claim: copies.Claim, outcome: str) -> None:
        self.health.mark_up(region.name)
        copies.mark_present(self.db, claim.sha256, region.name, owner=self.worker_id)
        REGION_COPIES.labels(region.name, outcome).inc()

    def _failed(self, region: Region, claim: copies.Claim, error: str) -> None:
        REGION_COPIES.labels(region.name, "failed").inc()
        wait = copies.backoff_s(claim.attempts, base_s=self.retry_base_s, cap_s=self.retry_cap_s)
        log.info(
            "copy of %s to %s failed (retry in %.0f s): %s",
            claim.sha256[:12],
            region.name,
            wait,
            error,
        )
        copies.mark_failed(
            self.db, claim.sha256, region.name, owner=self.worker_id, error=error, retry_in_s=wait
        )
