"""Reads by region: resolve, downloads (pull) and the Hub routes use the reader's regional
copy when the catalog says it is present, else fall back without an error (counted); an
unknown region is a 422 listing the regions; a region that is down makes readyz say
'degraded' while reads go elsewhere. SQLite and PostgreSQL, three S3 servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update

from registry.access import create_token
from registry.client.local import LocalClient
from registry.db import models as m
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer
from tests.regions.conftest import Relay
from tests.regions.helpers import drain, push, worker

REPO = "acme/voice"


@pytest.fixture
def http(runtime: Runtime) -> Iterator[httpx.Client]:
    with (
        LiveServer(create_app(runtime, background=False)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def ports(doc: dict[str, object]) -> set[int | None]:
    return {urlsplit(f["url"]).port for f in doc["files"]}  # type: ignore[attr-defined,index]


def fallbacks(region: str, reason: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "lorareg_region_fallbacks_total", {"region": region, "reason": reason}
        )
        or 0.0
    )


def port_of(url: str) -> int | None:
    return urlsplit(url).port


def test_resolve_uses_the_regional_copy_once_present(
    runtime: Runtime, http: httpx.Client, adapter_dir: Path, eu_link: Relay
) -> None:
    push(runtime, adapter_dir)
    primary = port_of(runtime.settings.s3_endpoint_url or "")
    before = fallbacks("eu", "missing")
    r = http.get(f"/api/v1/resolve/{REPO}", params={"region": "eu"})
    assert r.status_code == 200 and ports(r.json()) == {primary}  # not copied yet
    assert fallbacks("eu", "missing") > before
    plain = http.get(f"/api/v1/resolve/{REPO}")
    assert ports(plain.json()) == {primary}

    drain(worker(runtime))
    # A fallback answer is kept briefly at most; a fresh server sees the copy at once.
    with LiveServer(create_app(runtime, background=False)) as fresh:
        doc = httpx.get(f"{fresh.url}/api/v1/resolve/{REPO}", params={"region": "eu"}).json()
        assert ports(doc) == {eu_link.port}
        # The fast path keys its answers by region: the primary reader still reads there.
        for _ in range(2):
            doc = httpx.get(f"{fresh.url}/api/v1/resolve/{REPO}").json()
            assert ports(doc) == {primary}
            doc = httpx.get(f"{fresh.url}/api/v1/resolve/{REPO}", params={"region": "eu"}).json()
            assert ports(doc) == {eu_link.port}
        # The download route (pull) and the Hub's 302 go to the eu copy too.
        version = doc["version"]
        path = doc["files"][0]["path"]
        r = httpx.get(
            f"{fresh.url}/api/v1/adapters/{REPO}/versions/{version}/files/{path}",
            params={"region": "eu"},
        )
        assert r.status_code == 302 and port_of(r.headers["location"]) == eu_link.port
        r = httpx.get(f"{fresh.url}/{REPO}/resolve/main/{path}", params={"region": "eu"})
        assert r.status_code == 302 and port_of(r.headers["location"]) == eu_link.port


def test_unknown_region_is_a_422_listing_the_regions(
    runtime: Runtime, http: httpx.Client, adapter_dir: Path
) -> None:
    version = push(runtime, adapter_dir)
    path = version.files[0].path
    for url in (
        f"/api/v1/resolve/{REPO}",
        f"/api/v1/adapters/{REPO}/versions/1/files/{path}",
    ):
        for bad in ("mars", "EU", "x" * 5000, "eu x", "eu%"):
            r = http.get(url, params={"region": bad})
            assert r.status_code == 422, (url, bad, r.text)
            err = r.json()["error"]
            assert err["code"] == "unknown_region"
            assert "primary, eu, us" in err["message"]
            assert len(err["message"]) < 300
    r = http.get(f"/{REPO}/resolve/main/{path}", params={"region": "mars"})
    assert r.status_code == 422


def test_a_region_that_is_down_is_degraded_and_read_around(
    runtime: Runtime, http: httpx.Client, adapter_dir: Path, eu_link: Relay, tmp_path: Path
) -> None:
    version = push(runtime, adapter_dir)
    drain(worker(runtime))
    for _ in range(2):  # the second answer comes from the fast path's cache
        doc = http.get(f"/api/v1/resolve/{REPO}", params={"region": "eu"}).json()
        assert ports(doc) == {eu_link.port}
    eu_link.cut()
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["regions"]["eu"] != "ok" and ready.json()["regions"]["us"] == "ok"

    primary = port_of(runtime.settings.s3_endpoint_url or "")
    doc = http.get(f"/api/v1/resolve/{REPO}", params={"region": "eu"}).json()
    assert ports(doc) == {primary}
    path = version.files[0].path
    r = http.get(f"/api/v1/adapters/{REPO}/versions/1/files/{path}", params={"region": "eu"})
    assert r.status_code == 302 and port_of(r.headers["location"]) == primary
    # An embedded reader in eu (its own router, which has not seen the outage) pulls too.
    before = fallbacks("eu", "unavailable") + fallbacks("eu", "missing")
    pulled = LocalClient(runtime).pull(REPO, dest=tmp_path / "out", region="eu")
    assert pulled.version.content_id == version.content_id
    assert fallbacks("eu", "unavailable") + fallbacks("eu", "missing") > before

    eu_link.restore()
    assert http.get("/readyz").json()["status"] in ("ok", "degraded")  # probe cached briefly


def test_token_and_server_default_regions(
    runtime: Runtime, adapter_dir: Path, eu_link: Relay
) -> None:
    push(runtime, adapter_dir)
    drain(worker(runtime))
    primary = port_of(runtime.settings.s3_endpoint_url or "")
    token, info = create_token(runtime.db, name="eu-node", role="reader", actor="t")
    with runtime.db.write() as s:
        s.execute(update(m.Token).where(m.Token.id == info.id).values(default_region="eu"))
    app = create_app(runtime, require_auth=True, background=False)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {token}"}
        doc = client.get(f"/api/v1/resolve/{REPO}", headers=headers).json()
        assert ports(doc) == {eu_link.port}
        # An explicit region wins over the token's.
        doc = client.get(
            f"/api/v1/resolve/{REPO}", headers=headers, params={"region": "primary"}
        ).json()
        assert ports(doc) == {primary}

    # A server started in eu reads there for requests that name no region.
    in_eu = runtime.settings.model_copy(update={"region": "eu"})
    rt = Runtime(settings=in_eu, db=runtime.db, store=runtime.store)
    with LiveServer(create_app(rt, background=False)) as server:
        doc = httpx.get(f"{server.url}/api/v1/resolve/{REPO}").json()
        assert ports(doc) == {eu_link.port}


def test_a_region_failing_mid_download_is_continued_elsewhere(
    runtime: Runtime, adapter_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The eu copy answers, sends its first bytes, then its store fails: the pull goes on
    from the next region at the same offset and ends with the verified version."""
    from registry.errors import StorageUnavailable

    version = push(runtime, adapter_dir)
    drain(worker(runtime))
    client = LocalClient(runtime)
    eu = client.router.regions.get("eu").store
    whole = eu.iter_bytes

    def breaks_after_first_chunk(sha256: str, *, chunk_size: int = 1024) -> Iterator[bytes]:
        pieces = whole(sha256, chunk_size=chunk_size)
        yield next(iter(pieces))
        raise StorageUnavailable("eu: connection reset by peer")

    monkeypatch.setattr(eu, "iter_bytes", breaks_after_first_chunk)
    before = fallbacks("eu", "unavailable") + fallbacks("eu", "missing")
    pulled = client.pull(REPO, dest=tmp_path / "out", region="eu")
    assert pulled.version.content_id == version.content_id
    for f in version.files:
        assert (tmp_path / "out" / f.path).stat().st_size == f.size
    assert fallbacks("eu", "unavailable") + fallbacks("eu", "missing") > before


def test_an_experiments_variant_is_read_from_the_readers_region(
    runtime: Runtime, http: httpx.Client, adapter_dir: Path, eu_link: Relay
) -> None:
    """``?experiment=&subject=`` answers the variant's document with the same download
    URLs as the plain resolve for that reader's region."""
    local = LocalClient(runtime)
    push(runtime, adapter_dir)
    local.promote(f"{REPO}:1", to="production")
    local.experiment_create(
        REPO, "t", variants=[("control", "@production"), ("same", "1")], split="50,50", metric="m"
    )
    drain(worker(runtime))
    primary = port_of(runtime.settings.s3_endpoint_url or "")
    params = {"experiment": "t", "subject": "client-1"}
    doc = http.get(f"/api/v1/resolve/{REPO}", params={**params, "region": "eu"}).json()
    assert doc["experiment"]["name"] == "t" and ports(doc) == {eu_link.port}
    assert ports(http.get(f"/api/v1/resolve/{REPO}", params=params).json()) == {primary}


class _BreaksAfter(httpx.SyncByteStream):
    """A response body that sends its first ``keep`` bytes, then breaks off."""

    def __init__(self, inner: httpx.SyncByteStream, keep: int) -> None:
        self.inner, self.keep = inner, keep

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self.inner:
            if sent + len(chunk) >= self.keep:
                yield chunk[: self.keep - sent]
                raise httpx.ReadError("connection reset by peer")
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self.inner.close()


class _Partition(httpx.HTTPTransport):
    """The reader's own network: the store on ``port`` breaks off every download after
    ``keep`` bytes (0: refuses to connect), where the server still reaches it."""

    def __init__(self, port: int, keep: int) -> None:
        super().__init__()
        self.port, self.keep, self.broken = port, keep, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.port != self.port:
            return super().handle_request(request)
        self.broken += 1
        if not self.keep:
            raise httpx.ConnectError("connection refused")
        resp = super().handle_request(request)
        assert isinstance(resp.stream, httpx.SyncByteStream)
        return httpx.Response(
            resp.status_code, headers=resp.headers, stream=_BreaksAfter(resp.stream, self.keep)
        )


@pytest.mark.parametrize("keep", [0, 100])
def test_a_remote_pull_goes_on_from_the_primary_when_its_regions_store_fails(
    runtime: Runtime, adapter_dir: Path, tmp_path: Path, eu_link: Relay, keep: int
) -> None:
    """The server sends a remote reader to the eu store with a presigned URL; the reader
    cannot reach that store (or loses it after ``keep`` bytes) where the server still can.
    The pull goes on from the primary at the same offset and ends with the verified
    version; a region the server does not know is still refused."""
    from registry.client.remote import RemoteClient
    from registry.errors import UnknownRegion

    version = push(runtime, adapter_dir)
    drain(worker(runtime))
    with LiveServer(create_app(runtime, background=False)) as server:
        client = RemoteClient(server.url, actor="reader")
        partition = _Partition(eu_link.port, keep)
        client.storage_http = httpx.Client(transport=partition, timeout=30)
        try:
            pulled = client.pull(REPO, dest=tmp_path / "out", region="eu")
            assert partition.broken == len(version.files)  # every file tried eu first
            assert pulled.version.content_id == version.content_id
            for f in version.files:
                assert (tmp_path / "out" / f.path).stat().st_size == f.size
            with pytest.raises(UnknownRegion):
                client.pull(REPO, dest=tmp_path / "other", region="mars")
        finally:
            client.close()
