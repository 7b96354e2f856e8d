"""Replication: push records the needed copies, workers copy them (verified, leased,
retried with backoff) and the checker sees externally replicated blobs appear. Runs on
SQLite and PostgreSQL against three S3 servers (primary, eu, us)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from registry.regions import copies as catalog
from registry.runtime import Runtime
from tests.regions.conftest import Relay, s3
from tests.regions.helpers import copies, drain, key, make_due, object_sha, push, regions_of, worker


def test_replicate_end_to_end(
    runtime: Runtime, adapter_dir: Path, buckets: dict[str, str], eu_link: Relay
) -> None:
    version = push(runtime, adapter_dir)
    shas = {f.sha256 for f in version.files}
    # The push recorded a missing copy of each blob in each region, in its transaction.
    assert copies(runtime, "eu") == {sha: "missing" for sha in shas}
    assert copies(runtime, "us") == {sha: "missing" for sha in shas}

    drain(worker(runtime))

    assert copies(runtime, "eu") == {sha: "present" for sha in shas}
    eu = s3(eu_link.url)
    for sha in shas:  # the regional bytes hash to their names
        assert object_sha(eu, buckets["eu"], sha) == sha
    stats = {s.name: s for s in catalog.region_stats(runtime.db, regions_of(runtime))}
    assert stats["eu"].backlog_blobs == 0 and stats["eu"].present_blobs == len(shas)
    assert stats["eu"].lag_p50_s is not None and stats["eu"].lag_p99_s is not None
    # Nobody copied to us (external): it is the backlog there, in blobs and bytes.
    assert stats["us"].backlog_blobs == len(shas)
    assert stats["us"].backlog_bytes == sum(f.size for f in version.files)
    presence = catalog.version_regions(
        runtime.db, _version_id(runtime, version), regions_of(runtime)
    )
    assert presence.present == ["primary", "eu"]
    assert sorted(presence.missing["us"]) == sorted(f.path for f in version.files)

    # A second push of the same blobs: copies already present stay present.
    push(runtime, adapter_dir, "acme/other")
    assert copies(runtime, "eu") == {sha: "present" for sha in shas}


def _version_id(rt: Runtime, version: object) -> int:
    from sqlalchemy import select

    from registry.db import models as m

    with rt.db.read() as s:
        return int(
            s.scalar(
                select(m.AdapterVersion.id).where(
                    m.AdapterVersion.content_id == version.content_id  # type: ignore[attr-defined]
                )
            )
        )


def test_external_region_is_checked_not_copied(
    runtime: Runtime, adapter_dir: Path, buckets: dict[str, str], region_servers: dict[str, str]
) -> None:
    version = push(runtime, adapter_dir)
    w = worker(runtime)
    drain(w)
    us = s3(region_servers["us"])
    assert us.list_objects_v2(Bucket=buckets["us"]).get("KeyCount", 0) == 0  # never copied
    assert set(copies(runtime, "us").values()) == {"missing"}

    # The storage's own replication lands the objects: the checker records them.
    primary = s3(runtime.settings.s3_endpoint_url)  # type: ignore[arg-type]
    for f in version.files:
        data = primary.get_object(Bucket=buckets["primary"], Key=key(f.sha256))["Body"].read()
        us.put_object(Bucket=buckets["us"], Key=key(f.sha256), Body=data)
    make_due(runtime)
    drain(w)
    assert set(copies(runtime, "us").values()) == {"present"}


def test_a_corrupt_regional_object_is_replaced_never_trusted(
    runtime: Runtime, adapter_dir: Path, buckets: dict[str, str], eu_link: Relay
) -> None:
    version = push(runtime, adapter_dir)
    victim = version.files[0].sha256
    eu = s3(eu_link.url)
    eu.put_object(Bucket=buckets["eu"], Key=key(victim), Body=b"not the adapter")
    drain(worker(runtime))
    assert copies(runtime, "eu")[victim] == "present"
    assert object_sha(eu, buckets["eu"], victim) == victim


def test_outage_retries_with_backoff_then_drains(
    runtime: Runtime, adapter_dir: Path, buckets: dict[str, str], eu_link: Relay
) -> None:
    version = push(runtime, adapter_dir)
    eu_link.cut()
    w = worker(runtime, retry_base_s=30.0, retry_cap_s=60.0)
    w.run_once()
    failures = catalog.failures(runtime.db, region="eu")
    assert {f.sha256 for f in failures} == {f.sha256 for f in version.files}
    assert all(f.attempts == 1 and f.last_error for f in failures)
    # Backoff: nothing is due again straight away.
    assert catalog.claim_due(runtime.db, "eu", owner="x", lease_s=60) == []
    w.run_once()
    assert all(f.attempts == 1 for f in catalog.failures(runtime.db, region="eu"))

    eu_link.restore()
    make_due(runtime)
    drain(w)
    assert set(copies(runtime, "eu").values()) == {"present"}
    assert catalog.failures(runtime.db, region="eu") == []


def test_leases_keep_two_workers_off_the_same_copy(runtime: Runtime, adapter_dir: Path) -> None:
    version = push(runtime, adapter_dir)
    n = len(version.files)
    a = catalog.claim_due(runtime.db, "eu", owner="a", lease_s=60, limit=n)
    b = catalog.claim_due(runtime.db, "eu", owner="b", lease_s=60, limit=n)
    assert len(a) == n and b == []
    # Half each when they share: disjoint claims.
    sha = a[0].sha256
    assert not catalog.mark_present(runtime.db, sha, "eu", owner="b")  # not b's lease
    assert catalog.mark_present(runtime.db, sha, "eu", owner="a")
    # Worker a dies: once its lease has run out, b takes over the rest.
    later = catalog._now(None) + timedelta(seconds=61)
    taken = catalog.claim_due(runtime.db, "eu", owner="b", lease_s=60, limit=n, now=later)
    assert {c.sha256 for c in taken} == {c.sha256 for c in a[1:]}
    assert catalog.claim_due(runtime.db, "eu", owner="c", lease_s=60, limit=n, now=later) == []


def test_blobs_pushed_before_a_region_existed_are_adopted(
    runtime: Runtime, adapter_dir: Path
) -> None:
    version = push(runtime, adapter_dir)
    from sqlalchemy import delete

    from registry.db import models as m

    with runtime.db.write() as s:
        s.execute(delete(m.BlobReplica))
    assert catalog.adopt_unrecorded(runtime.db, ["eu"]) == len({f.sha256 for f in version.files})
    assert set(copies(runtime, "eu").values()) == {"missing"}
    assert catalog.adopt_unrecorded(runtime.db, ["eu"]) == 0


def test_two_workers_at_once_copy_each_blob_once(runtime: Runtime, adapter_dir: Path) -> None:
    import threading

    from prometheus_client import REGISTRY

    def copied() -> float:
        value = REGISTRY.get_sample_value(
            "lorareg_region_copies_total", {"region": "eu", "outcome": "copied"}
        )
        return value or 0.0

    version = push(runtime, adapter_dir)
    before = copied()
    workers = [worker(runtime, batch=1), worker(runtime, batch=1)]
    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert set(copies(runtime, "eu").values()) == {"present"}
    assert copied() - before == len({f.sha256 for f in version.files})


def test_large_blobs_stream_in_parts_and_bad_primary_bytes_are_refused(
    runtime: Runtime, buckets: dict[str, str], eu_link: Relay, tmp_path: Path
) -> None:
    import hashlib
    import os

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024 + 17))  # three 5 MiB parts (test part size)
    good = hashlib.sha256(big.read_bytes()).hexdigest()
    runtime.store.put_file(good, big)
    # A primary object whose bytes do not match its name (bit rot, a bad restore).
    bad = hashlib.sha256(b"what the name promises").hexdigest()
    primary = s3(runtime.settings.s3_endpoint_url)  # type: ignore[arg-type]
    primary.put_object(Bucket=buckets["primary"], Key=key(bad), Body=b"something else entirely")
    with runtime.db.write() as s:
        from registry.db import models as m

        s.add_all([m.Blob(sha256=good, size=big.stat().st_size), m.Blob(sha256=bad, size=22)])
    catalog.record_needed(runtime.db, [good, bad], ["eu"])

    worker(runtime, retry_base_s=60.0).run_once()

    assert copies(runtime, "eu") == {good: "present", bad: "failed"}
    eu = s3(eu_link.url)
    assert object_sha(eu, buckets["eu"], good) == good
    assert eu.list_objects_v2(Bucket=buckets["eu"], Prefix=key(bad)).get("KeyCount", 0) == 0
    (failure,) = catalog.failures(runtime.db, region="eu")
    assert failure.sha256 == bad and "do not match" in (failure.last_error or "")
