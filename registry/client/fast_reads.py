"""Catalog reads on a SQLite catalog through the standard library's ``sqlite3``: no SQLAlchemy,
no ORM, no pydantic. The CLI's read commands answer through it at start-up cost
(``cli/fast_path.py``); anything else that needs a quick look at an embedded catalog (the
unchanged re-push check) can use it too.

    conn = open_catalog(path)          # None: not there, not at the schema head, unreadable
    if conn is not None:
        with conn:                     # closes nothing: call conn.close() when done
            v = get_version(conn, parse_ref("acme/voice@production"))

Each function answers what ``registry.catalog.queries`` (and the services behind
``LocalClient``) answer for the same arguments, as ``Record``s shaped like the domain
models' ``model_dump()`` (same keys, same order, same types: timezone-aware UTC datetimes,
``Stage`` values as strings), and raises the same ``LoraregError``s with the same messages.
``tests/cli/test_fast_reads.py`` prints every read command both ways and compares the bytes.

Read-only by construction: the file is opened ``mode=ro`` and never created, migrated or
written; a catalog that is not exactly at the migrations' head is refused (``None``), so the
caller takes the normal path, which migrates or explains as it always did.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from registry.catalog.refs import Ref, Repo, parse_revision
from registry.errors import AdapterNotFound, InvalidReference, VersionNotFound

# registry.domain.Stage's values (pydantic is not imported here; a test keeps them equal).
STAGE_NAMES = ("staging", "production", "archived")
JOBS_LISTED = 100  # as registry.services.jobs.list_jobs
HISTORY_LIMIT = 1000  # as registry.catalog.queries.history


class Record(dict[str, Any]):
    """A domain object as plain data: ``r.key`` reads ``r["key"]``; ``model_dump()`` (and
    ``model_dump(mode="json")``) give what the pydantic model's would."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        if mode == "json":
            return _json_ready(self)  # type: ignore[no-any-return]
        return dict(self)

    # VersionInfo's properties.
    @property
    def repo(self) -> str:
        return f"{self['namespace']}/{self['name']}"

    @property
    def ref(self) -> str:
        return f"{self['namespace']}/{self['name']}:{self['number']}"


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso_z(value)
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def _iso_z(when: datetime | None) -> str | None:
    from registry.timestamps import iso_z

    return iso_z(when)


# -- opening -------------------------------------------------------------------------------


def open_catalog(path: str | Path) -> sqlite3.Connection | None:
    """A read-only connection to the SQLite catalog at ``path`` when it exists and its schema
    is at the migrations' head (one query); None otherwise (missing, older or newer schema,
    locked, not a database), and the caller takes the normal path."""
    from registry.db.heads import head_revisions

    p = Path(path)
    if not p.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{quote(str(p.absolute()))}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        stored = frozenset(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))
        if stored != head_revisions():
            conn.close()
            return None
    except sqlite3.Error:
        conn.close()
        return None
    return conn


def _when(value: str | None) -> datetime | None:
    """A stored timestamp as SQLAlchemy's ``UTCDateTime`` loads it: aware, UTC."""
    if value is None:
        return None
    when = datetime.fromisoformat(value)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _json(value: str | None) -> Any:
    """A JSON column as SQLAlchemy loads it (SQL NULL and JSON null both None)."""
    return None if value is None else json.loads(value)


# -- adapters and versions -------------------------------------------------------------------


def adapter_id(conn: sqlite3.Connection, repo: Repo) -> int:
    """The adapter's id; AdapterNotFound as ``queries.adapter_row``."""
    row = conn.execute(
        "SELECT a.id FROM adapters a JOIN namespaces n ON n.id = a.namespace_id"
        " WHERE n.name = ? AND a.name = ?",
        (repo.namespace, repo.name),
    ).fetchone()
    if row is None:
        raise AdapterNotFound(f"adapter {repo} does not exist; `lorareg list` shows what does")
    return int(row[0])


def list_adapters(conn: sqlite3.Connection, namespace: str | None = None) -> list[Record]:
    """Every adapter with versions, by ``ns/name``, as ``AdapterSummary``s (``lorareg list``)."""
    where, args = ("WHERE n.name = ?", (namespace,)) if namespace is not None else ("", ())
    rows = conn.execute(
        "SELECT n.name, a.name, c.n, c.latest, v.base_model, v.created_at"
        " FROM adapters a JOIN namespaces n ON n.id = a.namespace_id"
        " JOIN (SELECT adapter_id, count(*) AS n, max(number) AS latest FROM versions"
        "       GROUP BY adapter_id) c ON c.adapter_id = a.id"
        " JOIN versions v ON v.adapter_id = a.id AND v.number = c.latest"
        f" {where} ORDER BY n.name, a.name",
        args,
    ).fetchall()
    return [
        Record(
            namespace=ns,
            name=name,
            versions=n,
            latest=latest,
            base_model=base,
            updated_at=_when(created),
        )
        for ns, name, n, latest, base, created in rows
    ]


_VERSION_COLUMNS = (
    "v.id, n.name, a.name, v.number, v.content_id, v.base_model, v.peft_type, v.r,"
    " v.lora_alpha, v.target_modules, v.config, v.size, v.file_count, v.author,"
    " v.description, v.parent_id, v.created_at, v.stage, v.kind"
)
_VERSION_FROM = (
    " FROM versions v JOIN adapters a ON a.id = v.adapter_id"
    " JOIN namespaces n ON n.id = a.namespace_id"
)


def version_id(conn: sqlite3.Connection, ref: Ref, *, base: str | None = None) -> int:
    """The id of the version ``ref`` names, as ``queries.ref_row`` finds it (same errors)."""
    repo = ref.repo
    if ref.number is not None:
        revision = str(ref.number)
    elif ref.label is not None:
        revision = ref.label
    else:
        revision = "latest"
    kind, value = parse_revision(revision)
    aid = adapter_id(conn, repo)
    on_base, base_args = ("AND base_model = ?", (base,)) if base is not None else ("", ())
    if kind == "label":
        return _label_version(conn, repo, aid, str(value), base=base)
    where = ""
    args: tuple[Any, ...] = ()
    if kind == "number":
        where, args = "AND number = ?", (value,)
    elif kind == "content":
        where, args = "AND content_id = ?", (value,)
    row = conn.execute(
        f"SELECT id FROM versions WHERE adapter_id = ? {on_base} {where}"
        " ORDER BY number DESC LIMIT 1",
        (aid, *base_args, *args),
    ).fetchone()
    if row is None:
        on = f" for base {base}" if base else ""
        raise VersionNotFound(f"{repo} has no version {revision or 'latest'}{on}")
    return int(row[0])


def identical_version_id(
    conn: sqlite3.Connection, repo: Repo, content_id: str, base: str | None
) -> int | None:
    """The id of ``repo``'s version with this content id and base model (None: none), as
    ``registry.catalog.push.identical_version`` finds it: what a push of the same files
    would answer with ``created=False``. ``version_info(conn, id)`` gives the version;
    ``VersionInfo.model_validate(record)`` the domain model."""
    on_base = "base_model IS NULL" if base is None else "base_model = ?"
    row = conn.execute(
        "SELECT v.id FROM versions v JOIN adapters a ON a.id = v.adapter_id"
        " JOIN namespaces n ON n.id = a.namespace_id"
        f" WHERE n.name = ? AND a.name = ? AND v.content_id = ? AND v.{on_base}",
        (repo.namespace, repo.name, content_id, *(() if base is None else (base,))),
    ).fetchone()
    return None if row is None else int(row[0])


def _label_version(
    conn: sqlite3.Connection, repo: Repo, aid: int, label: str, *, base: str | None
) -> int:
    """A stage's or alias's version, as ``queries.label_row``."""
    on_base, base_args = ("AND v.base_model = ?", (base,)) if base is not None else ("", ())
    if label in STAGE_NAMES:
        rows = conn.execute(
            f"SELECT v.id, v.base_model FROM versions v WHERE v.adapter_id = ? AND v.stage = ?"
            f" {on_base} ORDER BY v.number DESC",
            (aid, label, *base_args),
        ).fetchall()
        if not rows:
            on = f" for base {base}" if base else ""
            raise VersionNotFound(f"{repo} has no version in {label}{on}")
        if label == "production" and len({b for _, b in rows}) > 1:
            bases = ", ".join(sorted(str(b) for _, b in rows))
            raise InvalidReference(
                f"{repo} is in production for several base models ({bases}); pass --base"
                " (or ?base=) to pick one"
            )
        return int(rows[0][0])
    row = conn.execute(
        "SELECT v.id FROM versions v JOIN aliases l ON l.version_id = v.id"
        f" WHERE l.adapter_id = ? AND l.name = ? {on_base}",
        (aid, label, *base_args),
    ).fetchone()
    if row is None:
        raise VersionNotFound(f"{repo} has no version labelled {label!r}")
    return int(row[0])


def version_info(conn: sqlite3.Connection, vid: int) -> Record:
    """The version with its parent's number, aliases, tags, evals and files, as
    ``VersionInfo`` (``queries.to_info``)."""
    (
        _, ns, name, number, content_id, base_model, peft_type, r, lora_alpha, targets,
        config, size, file_count, author, description, parent_id, created, stage, kind,
    ) = conn.execute(
        f"SELECT {_VERSION_COLUMNS}{_VERSION_FROM} WHERE v.id = ?", (vid,)
    ).fetchone()  # fmt: skip
    parent = None
    if parent_id is not None:
        found = conn.execute("SELECT number FROM versions WHERE id = ?", (parent_id,)).fetchone()
        parent = None if found is None else found[0]
    aliases = sorted(
        r[0] for r in conn.execute("SELECT name FROM aliases WHERE version_id = ?", (vid,))
    )
    tags = {k: val for k, val in conn.execute(
        "SELECT key, value FROM tags WHERE version_id = ? ORDER BY key", (vid,))}  # fmt: skip
    evals = [
        Record(
            metric=metric,
            value=float(value),
            dataset=dataset,
            higher_is_better=bool(better),
            recorded_by=by,
            created_at=_when(at),
        )
        for metric, value, dataset, better, by, at in conn.execute(
            "SELECT metric, value, dataset, higher_is_better, recorded_by, created_at"
            " FROM eval_scores WHERE version_id = ? ORDER BY id",
            (vid,),
        )
    ]
    files = [
        Record(path=path, sha256=sha, size=fsize)
        for path, sha, fsize in conn.execute(
            "SELECT path, sha256, size FROM version_files WHERE version_id = ? ORDER BY path",
            (vid,),
        )
    ]
    return Record(
        namespace=ns,
        name=name,
        number=number,
        content_id=content_id,
        base_model=base_model,
        peft_type=peft_type,
        r=r,
        lora_alpha=float(lora_alpha),
        target_modules=list(_json(targets) or []),
        config=dict(_json(config) or {}),
        size=size,
        file_count=file_count,
        author=author,
        description=description,
        parent=parent,
        created_at=_when(created),
        stage=stage or None,
        aliases=aliases,
        kind=kind,
        tags=tags,
        evals=evals,
        files=files,
    )


def get_version(conn: sqlite3.Connection, ref: Ref, *, base: str | None = None) -> Record:
    """``lorareg show REF [--base B]``'s version (``queries.get_version``)."""
    return version_info(conn, version_id(conn, ref, base=base))


def latest_checks(conn: sqlite3.Connection, vid: int) -> list[dict[str, Any]]:
    """The newest stored check of the version against each base (``check_records``)."""
    seen: dict[str, dict[str, Any]] = {}
    for base, verdict, created, by, report in conn.execute(
        "SELECT base_model, verdict, created_at, created_by, report FROM check_results"
        " WHERE version_id = ? ORDER BY id DESC",
        (vid,),
    ):
        if base not in seen:
            seen[base] = {
                "base_model": base,
                "verdict": verdict,
                "created_at": _iso_z(_when(created)),
                "created_by": by,
                "report": _json(report),
            }
    return list(seen.values())


# -- history and jobs --------------------------------------------------------------------------


def history(conn: sqlite3.Connection, repo: Repo) -> list[Record]:
    """Every event of an adapter, oldest first, as ``EventInfo``s (``queries.history``)."""
    adapter_id(conn, repo)
    return _events(
        conn, "namespace = ? AND adapter = ?", (repo.namespace, repo.name), HISTORY_LIMIT
    )


def namespace_history(conn: sqlite3.Connection, namespace: str) -> list[Record]:
    """Every event of a namespace, oldest first (``lifecycle.events.namespace_history``:
    the name is not checked; an unknown one has no events)."""
    return _events(conn, "namespace = ?", (namespace,), HISTORY_LIMIT)


def _events(
    conn: sqlite3.Connection, where: str, args: tuple[Any, ...], limit: int
) -> list[Record]:
    return [
        Record(
            id=eid,
            kind=kind,
            namespace=ns,
            adapter=adapter,
            version=version,
            actor=actor,
            payload=dict(_json(payload) or {}),
            created_at=_when(created),
        )
        for eid, kind, ns, adapter, version, actor, payload, created in conn.execute(
            "SELECT id, kind, namespace, adapter, version, actor, payload, created_at"
            f" FROM events WHERE {where} ORDER BY id LIMIT ?",
            (*args, limit),
        )
    ]


def jobs(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The newest jobs as ``JobInfo.to_json()`` documents (``lorareg jobs``, unscoped)."""
    out = []
    for row in conn.execute(
        "SELECT j.id, j.kind, j.state, j.spec, j.progress, j.status, j.attempts, j.error,"
        " j.result, n.name || '/' || a.name || ':' || v.number, j.worker_id, j.created_by,"
        " j.created_at, j.started_at, j.finished_at, j.namespace"
        " FROM jobs j LEFT JOIN versions v ON v.id = j.output_version_id"
        " LEFT JOIN adapters a ON a.id = v.adapter_id"
        " LEFT JOIN namespaces n ON n.id = a.namespace_id"
        " ORDER BY j.id DESC LIMIT ?",
        (JOBS_LISTED,),
    ):
        (jid, kind, state, spec, progress, status, attempts, error, result, output,
         worker, by, created, started, finished, namespace) = row  # fmt: skip
        out.append(
            {
                "id": jid,
                "kind": kind,
                "state": state,
                "spec": dict(_json(spec)),
                "progress": progress,
                "status": dict(_json(status) or {}),
                "attempts": attempts,
                "error": error,
                "result": _json(result),
                "output": output,
                "worker_id": worker,
                "created_by": by,
                "created_at": _iso_z(_when(created)),
                "started_at": _iso_z(_when(started)),
                "finished_at": _iso_z(_when(finished)),
                "namespace": namespace,
            }
        )
    return out
