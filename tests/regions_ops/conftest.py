"""Regions for the operator-facing tests: the primary store on the session's moto server
and two regional stores, ``eu`` (replicate) and ``us`` (external), each on a moto server
of its own, with fresh buckets per test; the catalog on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from registry.config import Settings, load_settings
from registry.runtime import Runtime, open_runtime
from registry.storage.base import blob_key
from tests.fixtures.s3 import TEST_PART_SIZE, _stop, start_moto

REGIONS = ("eu", "us")


@pytest.fixture(scope="session")
def region_servers(
    s3_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """region -> endpoint of a moto server of its own (started with the fake AWS
    credentials ``s3_server`` put in the environment)."""
    procs: list[subprocess.Popen[bytes]] = []
    endpoints: dict[str, str] = {}
    log = tmp_path_factory.mktemp("moto-regions") / "servers.log"
    try:
        for name in REGIONS:
            proc, endpoint = start_moto(log)
            procs.append(proc)
            endpoints[name] = endpoint
        yield endpoints
    finally:
        for proc in procs:
            _stop(proc)


def s3(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"})
    )


class RegionBuckets:
    """Where each region's bytes are, for tests to look at (and damage) directly."""

    def __init__(self, endpoints: dict[str, str], buckets: dict[str, str]) -> None:
        self.endpoints = endpoints
        self.buckets = buckets
        self.clients = {name: s3(url) for name, url in endpoints.items()}

    def keys(self, region: str) -> set[str]:
        """The sha256 of every blob in the region's bucket."""
        out = set()
        pages = self.clients[region].get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.buckets[region], Prefix="blobs/sha256/"):
            for obj in page.get("Contents", []):
                _, _, fan, rest = obj["Key"].split("/", 3)
                out.add(fan + rest)
        return out

    @staticmethod
    def key_of(sha256: str) -> str:
        return f"blobs/{blob_key(sha256)}"


@pytest.fixture
def region_buckets(s3_server: str, region_servers: dict[str, str]) -> RegionBuckets:
    endpoints = {"primary": s3_server, **region_servers}
    buckets = {}
    for name, url in endpoints.items():
        bucket = f"lorareg-{name}-{uuid.uuid4().hex[:12]}"
        s3(url).create_bucket(Bucket=bucket)
        buckets[name] = bucket
    return RegionBuckets(endpoints, buckets)


@pytest.fixture
def storage_backend() -> str:
    return "s3"


@pytest.fixture
def region_settings(database_url: str, region_buckets: RegionBuckets, tmp_path: Path) -> Settings:
    b, e = region_buckets.buckets, region_buckets.endpoints
    regions = [
        {"name": "eu", "storage_url": f"s3://{b['eu']}/blobs", "endpoint_url": e["eu"]},
        {
            "name": "us",
            "storage_url": f"s3://{b['us']}/blobs",
            "endpoint_url": e["us"],
            "mode": "external",
        },
    ]
    return load_settings(
        home=tmp_path / "home",
        database_url=database_url,
        cache_dir=tmp_path / "cache",
        author="tester",
        storage_url=f"s3://{b['primary']}/blobs",
        s3_endpoint_url=e["primary"],
        part_size=TEST_PART_SIZE,
        regions=json.dumps(regions),
    )


@pytest.fixture
def region_runtime(region_settings: Settings) -> Iterator[Runtime]:
    rt = open_runtime(region_settings)
    yield rt
    rt.close()


def replicate(rt: Runtime, buckets: RegionBuckets | None = None) -> None:
    """Fill every region: lorareg's worker copies to ``eu`` (replicate); for ``us``
    (external) the test stands for the storage's own replication, copying the bytes with
    boto3, then lorareg's checker records them."""
    from registry.regions.worker import ReplicationWorker
    from registry.services.regions import region_set

    regions = region_set(rt)
    if buckets is not None:
        primary = buckets.clients["primary"]
        for sha in buckets.keys("primary"):
            key = buckets.key_of(sha)
            body = primary.get_object(Bucket=buckets.buckets["primary"], Key=key)["Body"].read()
            buckets.clients["us"].put_object(Bucket=buckets.buckets["us"], Key=key, Body=body)
    worker = ReplicationWorker(regions, rt.db)
    for _ in range(50):
        if worker.run_once() == 0:
            break
