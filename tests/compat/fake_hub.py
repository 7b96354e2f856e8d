"""A minimal Hugging Face Hub on loopback, serving exactly the routes lorareg's hub source
makes huggingface_hub call (read from huggingface_hub's own code):

- ``GET /api/models/{repo}/revision/{rev}?blobs=true`` (``HfApi.model_info`` with
  ``files_metadata=True``): commit sha and files with sizes and LFS sha256s;
- ``HEAD`` / ``GET /{repo}/resolve/{rev}/{path}`` (``hf_hub_download``, ranged reads):
  ``X-Repo-Commit``, ``ETag``, ``X-Linked-Size`` / ``X-Linked-Etag`` for LFS files,
  ``Range`` answered with 206, errors with ``X-Error-Code`` as the hub sends them.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str
    lfs: set[str] = field(default_factory=set)


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    url: str = ""
    sent: int = 0  # body bytes sent for file routes (not counting API JSON)

    def add_folder(self, repo_id: str, folder: Path, *, commit: str) -> Repo:
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        lfs = {name for name in files if name.endswith(".safetensors")}
        self.repos[repo_id] = Repo(files, commit, lfs)
        return self.repos[repo_id]


def _sibling(name: str, data: bytes, lfs: bool) -> dict[str, object]:
    entry: dict[str, object] = {
        "rfilename": name,
        "size": len(data),
        "blobId": hashlib.sha1(data).hexdigest(),
    }
    if lfs:
        entry["lfs"] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "pointerSize": 134,
        }
    return entry


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _send(self, status: int, headers: dict[str, str], data: bytes, body: bool) -> None:
            self.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(k, v)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _error(self, status: int, code: str, body: bool) -> None:
            msg = json.dumps({"error": code}).encode()
            self._send(
                status, {"X-Error-Code": code, "Content-Type": "application/json"}, msg, body
            )

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path, self.headers.get("Authorization")))
            api = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/(.+))?$", path)
            resolve = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            m = api or resolve
            if not m or m.group(1) not in hub.repos:
                return self._error(404, "RepoNotFound", body)
            repo = hub.repos[m.group(1)]
            if (m.group(2) or "main") not in ("main", repo.commit):
                return self._error(404, "RevisionNotFound", body)
            if api:
                doc = {
                    "id": m.group(1),
                    "sha": repo.commit,
                    "private": False,
                    "siblings": [_sibling(n, d, n in repo.lfs) for n, d in repo.files.items()],
                }
                data = json.dumps(doc).encode()
                return self._send(200, {"Content-Type": "application/json"}, data, body)
            name = m.group(3)
            if name not in repo.files:
                return self._error(404, "EntryNotFound", body)
            data = repo.files[name]
            etag = (
                hashlib.sha256(data).hexdigest()
                if name in repo.lfs
                else hashlib.sha1(data).hexdigest()
            )
            headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
            if name in repo.lfs:
                headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))}
            status, part = 200, data
            rng = _RANGE.match(self.headers.get("Range", ""))
            if rng:
                start = int(rng.group(1))
                end = min(int(rng.group(2)) if rng.group(2) else len(data) - 1, len(data) - 1)
                status, part = 206, data[start : end + 1]
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            if body:
                hub.sent += len(part)
            self._send(status, headers, part, body)

    return Handler


@contextmanager
def serve(hub: FakeHub) -> Iterator[FakeHub]:
    """Run ``hub`` on a free loopback port for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
