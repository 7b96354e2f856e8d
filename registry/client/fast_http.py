"""Remote catalog reads (``LORAREG_URL``) with the standard library's ``http.client``: no
httpx, no pydantic. The CLI's read fast path (``cli/fast_path.py``) uses it; the answers are
what ``RemoteClient`` returns for the same calls, as ``fast_reads.Record``s shaped like the
domain models after ``model_validate`` (model fields only, in the model's order, floats as
floats, timestamps as aware datetimes).

    api = FastApi(url, token=token, actor=actor)
    adapters = api.list_adapters("acme")      # the same pages RemoteClient reads

Exactness first: only what is answered exactly as ``RemoteClient`` answers it is answered
here. A server error with lorareg's JSON error document becomes the same ``LoraregError``
(same message, same exit status); anything else (a connection that fails or breaks, a TLS
failure, a redirect, a body that is not the expected JSON) raises ``NotAnswered`` and the
caller takes the normal path, which sends the request again through httpx (reads are
idempotent) and reports as it always did. TLS trusts what httpx trusts: ``SSL_CERT_FILE``,
else ``SSL_CERT_DIR``, else certifi's bundle.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from registry.catalog.refs import Ref, parse_ref, parse_repo
from registry.client.fast_reads import STAGE_NAMES, Record
from registry.errors import error_for_code

PAGE = 1000  # adapters per request, as RemoteClient.list_adapters
TIMEOUT_S = 30.0  # httpx.Timeout(30.0, read=300.0) in RemoteClient: connect 30 s
READ_TIMEOUT_S = 300.0

# The domain models' fields in declaration order (registry/domain.py), with the defaults
# pydantic fills in; tests/cli/test_fast_reads.py keeps them equal to the models.
ADAPTER_SUMMARY = ("namespace", "name", "versions", "latest", "base_model", "updated_at")
EVENT_INFO = ("id", "kind", "namespace", "adapter", "version", "actor", "payload", "created_at")
VERSION_INFO = (
    "namespace", "name", "number", "content_id", "base_model", "peft_type", "r", "lora_alpha",
    "target_modules", "config", "size", "file_count", "author", "description", "parent",
    "created_at", "stage", "aliases", "kind", "tags", "evals", "files",
)  # fmt: skip
VERSION_DEFAULTS: dict[str, Any] = {
    "stage": None, "aliases": [], "kind": "adapter", "tags": {}, "evals": [], "files": [],
}  # fmt: skip
EVAL_RECORD = ("metric", "value", "dataset", "higher_is_better", "recorded_by", "created_at")
EVAL_DEFAULTS: dict[str, Any] = {
    "dataset": None, "higher_is_better": True, "recorded_by": None, "created_at": None,
}  # fmt: skip
FILE_ENTRY = ("path", "sha256", "size")


_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


class NotAnswered(Exception):
    """Not answered exactly here: the caller takes the normal path."""


class FastApi:
    """GETs against a lorareg server, with ``RemoteClient``'s headers."""

    def __init__(self, url: str, *, token: str | None, actor: str) -> None:
        self.base = url.rstrip("/")
        parts = urlsplit(self.base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotAnswered
        self._parts = parts
        self.headers = {"X-Lorareg-Actor": actor, "User-Agent": "lorareg-client"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._conn: Any = None

    def _connection(self) -> Any:
        import http.client

        if self._conn is None:
            p = self._parts
            host = p.hostname or ""
            try:
                port = p.port
            except ValueError:
                raise NotAnswered from None
            if p.scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    host, port, timeout=TIMEOUT_S, context=_tls_context()
                )
            else:
                self._conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
        return self._conn

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The JSON body of ``GET path``; a lorareg error document raises its error."""
        target = self._parts.path + path + (f"?{urlencode(params)}" if params else "")
        try:
            conn = self._connection()
            if conn.sock is None:  # connect within 30 s, then read within 300 s, as httpx
                conn.connect()
                sock: Any = conn.sock
                sock.settimeout(READ_TIMEOUT_S)
            conn.request("GET", target, headers=self.headers)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, ValueError) as exc:  # refused, reset, TLS, timeout, bad URL
            self.close()
            raise NotAnswered from exc
        except Exception as exc:  # http.client's own (a malformed status line ...)
            self.close()
            raise NotAnswered from exc
        if resp.status >= 400:
            try:
                err = json.loads(body)["error"]
                code, message = str(err["code"]), str(err["message"])
            except Exception:
                raise NotAnswered from None  # RemoteClient words other bodies itself
            raise error_for_code(code)(message)
        if resp.status != 200:
            raise NotAnswered  # a redirect or an empty answer: not a read result
        try:
            return json.loads(body)
        except ValueError:
            raise NotAnswered from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the reads, as RemoteClient makes them ------------------------------------------------

    def list_adapters(self, namespace: str | None = None) -> list[Record]:
        out: list[Record] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": PAGE}
            if namespace:
                params["namespace"] = namespace
            if after:
                params["after"] = after
            page = [_model(a, ADAPTER_SUMMARY) for a in _list(self.get("/api/v1/adapters", params))]
            out.extend(page)
            if len(page) < PAGE:
                return out
            after = f"{page[-1]['namespace']}/{page[-1]['name']}"

    def show(self, ref: str, *, base: str | None = None) -> Record:
        r = parse_ref(ref)
        params = {"base": base} if base else None
        doc = self.get(f"/api/v1/adapters/{r.repo}/versions/{_revision(r)}", params)
        return version_record(doc)

    def checks(self, ref: str) -> list[Any]:
        r = parse_ref(ref)
        return _list(self.get(f"/api/v1/adapters/{r.repo}/versions/{_revision(r)}/checks"))

    def history(self, repo: str) -> list[Record]:
        docs = _list(self.get(f"/api/v1/adapters/{parse_repo(repo)}/history"))
        return [_model(e, EVENT_INFO) for e in docs]

    def namespace_history(self, namespace: str) -> list[Record]:
        # The name goes into the path as written: only names that need no escaping here.
        if not _PLAIN_SEGMENT.fullmatch(namespace) or namespace in (".", ".."):
            raise NotAnswered
        docs = _list(self.get(f"/api/v1/namespaces/{namespace}/history"))
        return [_model(e, EVENT_INFO) for e in docs]

    def jobs(self) -> list[Any]:
        return _list(self.get("/api/v1/jobs"))


def _revision(ref: Ref) -> str:
    if ref.number is not None:
        return str(ref.number)
    return ref.label or "latest"


def _list(doc: Any) -> list[Any]:
    if not isinstance(doc, list):
        raise NotAnswered
    return doc


def _model(doc: Any, fields: tuple[str, ...], defaults: dict[str, Any] | None = None) -> Record:
    """``doc`` as pydantic would validate it into a model with ``fields``: extra keys left
    out, defaults filled in, ISO timestamps parsed; a missing field is not answered here."""
    if not isinstance(doc, dict):
        raise NotAnswered
    out = Record()
    for f in fields:
        if f in doc:
            value = doc[f]
        elif defaults is not None and f in defaults:
            value = defaults[f]
        else:
            raise NotAnswered
        if f in ("created_at", "updated_at") and value is not None:
            value = _when(value)
        out[f] = value
    return out


def version_record(doc: Any) -> Record:
    """A ``VersionInfo`` document (``GET .../versions/REV``) as ``VersionInfo.model_validate``
    and ``model_dump`` would give it."""
    v = _model(doc, VERSION_INFO, VERSION_DEFAULTS)
    v["lora_alpha"] = _float(v["lora_alpha"])
    if v["stage"] not in (None, *STAGE_NAMES):
        raise NotAnswered  # pydantic would refuse it
    v["evals"] = [_model(e, EVAL_RECORD, EVAL_DEFAULTS) for e in _list(v["evals"])]
    for e in v["evals"]:
        e["value"] = _float(e["value"])
    v["files"] = [_model(f, FILE_ENTRY) for f in _list(v["files"])]
    return v


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NotAnswered
    return float(value)


def _when(value: Any) -> datetime:
    if not isinstance(value, str):
        raise NotAnswered
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise NotAnswered from None


def _tls_context() -> Any:
    """The trust httpx (RemoteClient) would use with its defaults."""
    import ssl

    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
