"""What sync needs from the registry, over either client.

The ``RegistryClient`` protocol covers listing and resolving; the feed and raw blob bytes
differ by transport, so each client gets a small adapter here instead of new methods on
the clients: the local one reads the catalog and the blob store in-process (and turns the
feed into a short poll, as there is no server to hold a long poll open); the remote one
calls ``/api/v1/events`` with ``wait`` and downloads each file from the URL ``resolve``
gave, sending the bearer token only to the registry itself, never to presigned storage.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from registry.catalog.refs import Repo, parse_repo
from registry.domain import EventInfo
from registry.errors import LoraregError, NotFound, Unauthorized, Unavailable, error_for_code
from registry.experiments.domain import ServedExperiment
from registry.sync.stream import EventStream, NotStreaming, StreamEnded

CHUNK = 1024 * 1024
# A stream the server ends sooner than this is a failure (backoff), not a normal end.
MIN_STREAM_S = 1.0


@dataclass(frozen=True)
class RemoteFile:
    path: str
    sha256: str
    size: int
    url: str


@dataclass(frozen=True)
class Target:
    """The version a stage or alias names for one adapter, as ``resolve`` describes it."""

    repo: Repo
    number: int
    content_id: str
    base_model: str | None
    files: tuple[RemoteFile, ...]


class SyncSource(Protocol):
    # Names the registry, so a folder moved to another one does not reuse its cursor.
    identity: str
    # A digest of the credentials sent (another token may see other namespaces), or None.
    credentials: str | None

    def adapters(self, namespace: str | None) -> list[Repo]: ...

    def resolve(self, repo: Repo, *, ref: str, base: str | None) -> Target | None: ...

    def events(self, since: int, *, wait: float, namespace: str | None) -> list[EventInfo]: ...

    def version_exists(self, repo: Repo, number: int) -> bool: ...

    def experiments(self, namespace: str | None, base: str) -> list[ServedExperiment]: ...

    def open_blob(self, f: RemoteFile) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class ClientSource:
    """Listing and resolving through the RegistryClient protocol, shared by both sources."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def adapters(self, namespace: str | None) -> list[Repo]:
        """Every adapter the caller may see (in ``namespace`` when given)."""
        return [Repo(a.namespace, a.name) for a in self.client.list_adapters(namespace)]

    def resolve(self, repo: Repo, *, ref: str, base: str | None) -> Target | None:
        """The version ``ref`` names (on ``base`` when given); None when there is none."""
        try:
            doc = self.client.resolve(str(repo), ref=ref, base=base)
        except NotFound:
            return None
        return Target(
            repo=parse_repo(f"{doc['namespace']}/{doc['name']}"),
            number=int(doc["version"]),
            content_id=str(doc["content_id"]),
            base_model=doc.get("base_model"),
            files=tuple(
                RemoteFile(
                    path=str(f["path"]),
                    sha256=str(f["sha256"]),
                    size=int(f["size"]),
                    url=str(f["url"]),
                )
                for f in doc["files"]
            ),
        )

    def experiments(self, namespace: str | None, base: str) -> list[ServedExperiment]:
        """Every running A/B experiment on ``base`` the caller may see: one paged call."""
        return list(self.client.running_experiments(namespace=namespace, base=base))

    def version_exists(self, repo: Repo, number: int) -> bool:
        """False once the registry erased the version (or the caller may not see it)."""
        try:
            self.client.show(f"{repo}:{number}")
        except NotFound:
            return False
        return True


class LocalSource(ClientSource):
    """The embedded catalog: the feed is polled every ``poll_s`` while a wait lasts."""

    def __init__(self, client: Any, *, poll_s: float = 0.05) -> None:
        super().__init__(client)
        self.poll_s = poll_s
        # The catalog's URL may hold a password: keep only a digest of it.
        url = client.rt.settings.effective_database_url.encode()
        self.identity = f"embedded:{hashlib.sha256(url).hexdigest()[:16]}"
        self.credentials: str | None = None

    def events(self, since: int, *, wait: float, namespace: str | None) -> list[EventInfo]:
        from registry.lifecycle.events import events_after

        deadline = time.monotonic() + wait
        while True:
            found = events_after(self.client.rt.db, since, namespace=namespace)
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(self.poll_s)

    def open_blob(self, f: RemoteFile) -> Iterator[bytes]:
        # LORAREG_REGION: this node's region's copy when there, else the fallback order.
        return iter(self.client.reader_store(f.sha256, None))

    def close(self) -> None:
        pass


class RemoteSource(ClientSource):
    """A ``lorareg serve``: the feed as a stream of Server-Sent Events (a long poll with a
    server that does not stream), downloads from the URLs ``resolve`` returns."""

    def __init__(self, client: Any, *, stream: bool = True) -> None:
        super().__init__(client)
        self.identity = str(client.base)
        auth = client.http.headers.get("Authorization")
        self.credentials = hashlib.sha256(auth.encode()).hexdigest()[:16] if auth else None
        self.streaming = stream
        self._stream: EventStream | None = None

    def events(self, since: int, *, wait: float, namespace: str | None) -> list[EventInfo]:
        """Events after ``since``; with ``wait``, from the open stream (opened again from
        ``since`` when it broke, or when the caller went back to an earlier cursor). Without
        ``wait``: what the open stream holds already, or a plain read when none is open."""
        s = self._stream
        if s is not None and (s.since != since or s.namespace != namespace):
            self.close()
            s = None
        if not self.streaming or (wait <= 0 and s is None):
            # No stream to read from: a plain read (exact at once, as start-up needs).
            return list(self.client.events(since, wait=wait, namespace=namespace))
        if s is None:
            s = self._stream = EventStream(
                self.client.http, since=since, namespace=namespace, check=_raise_for_error
            )
        try:
            return s.take(wait)
        except NotStreaming:
            self.close()
            self.streaming = False  # an older server: long polls from now on
            return list(self.client.events(since, wait=wait, namespace=namespace))
        except StreamEnded:
            self.close()
            if s.closed:  # closed by its owner (stopping): not a failure
                return []
            if time.monotonic() - s.opened_at < MIN_STREAM_S:
                msg = "the registry ended the event stream as soon as it opened"
                raise Unavailable(msg) from None
            return []  # the next call resumes from the cursor
        except LoraregError:
            self.close()
            raise

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def open_blob(self, f: RemoteFile) -> Iterator[bytes]:
        same_origin = _origin(f.url) == _origin(self.client.base)
        http: httpx.Client = self.client.http if same_origin else self.client.storage_http
        try:
            with http.stream("GET", f.url, follow_redirects=False) as resp:
                if resp.is_redirect:
                    resp.read()
                    yield from self._storage(resp.headers["location"])
                    return
                _check(resp, f)
                yield from resp.iter_bytes(CHUNK)
        except httpx.TransportError as exc:
            raise Unavailable(f"download of {f.path} broke off: {exc}") from None

    def _storage(self, url: str) -> Iterator[bytes]:
        with self.client.storage_http.stream("GET", url) as resp:
            _check(resp, None)
            yield from resp.iter_bytes(CHUNK)


def _raise_for_error(resp: httpx.Response) -> None:
    from registry.client.remote import _raise_for_error as raise_for_error

    raise_for_error(resp)


def source_for(client: Any) -> SyncSource:
    """The sync source for a client made by ``registry.client.connect``."""
    from registry.client.local import LocalClient
    from registry.client.remote import RemoteClient

    if isinstance(client, RemoteClient):
        return RemoteSource(client)
    if isinstance(client, LocalClient):
        return LocalSource(client)
    raise TypeError(f"lorareg sync cannot use a {type(client).__name__}")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _check(resp: httpx.Response, f: RemoteFile | None) -> None:
    if resp.status_code < 400:
        return
    resp.read()
    what = f.path if f else "a file"
    try:
        err = resp.json()["error"]
        cls, message = error_for_code(str(err["code"])), str(err["message"])
    except Exception:
        cls, message = LoraregError, f"download of {what} answered {resp.status_code}"
    if resp.status_code >= 500 or resp.status_code == 429:
        raise Unavailable(message)  # the registry or storage is struggling: retry later
    if resp.status_code == 401 and not issubclass(cls, Unauthorized):
        cls = Unauthorized
    raise cls(message)
