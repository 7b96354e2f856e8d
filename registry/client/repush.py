"""The answer to an unchanged re-push, without SQLAlchemy, pydantic's ORM layer or boto3.

``lorareg push DIR REPO`` of a folder already stored as a version answers
``unchanged: identical to REPO:N`` and creates nothing. The full path (``LocalClient.push``)
gets there after importing the catalog's ORM and boto3 and opening both, which costs about
a second. This module gives the same answer from:

- the hash index (``HashIndex.known``): every file's sha256 from its stat signature; a file
  whose signature does not match is not hashed here (the full path hashes it, once);
- the same folder validation and request checks as the full path (``inspect_adapter``,
  ``validate_metadata``), so the manifest and content id are computed exactly as there;
- one read-only ``sqlite3`` connection to the embedded catalog, only at the schema head
  (one query on ``alembic_version``): the version of REPO with this content id and base,
  the question ``push.identical_version`` asks;
- every blob still stored: a stat each in a local store, one signed HEAD each on S3
  (``storage.s3_probe``). Not a remembered "verified recently": a blob that
  ``fsck --repair`` deleted, or that was lost, must make the push store it again.

Anything else (PostgreSQL, a remote server, ``--strict``, a catalog at another schema
version, a file changed or touched, a missing blob, any error) returns None and the caller
takes the full path, which is always right and reports errors in its own words.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from registry.config import Settings, static_aws_keys
from registry.domain import EvalRecord, FileEntry
from registry.errors import LoraregError


@dataclass(frozen=True)
class Unchanged:
    """The existing version an unchanged push answers with (``created=False``)."""

    ref: str
    content_id: str
    files: int


def unchanged_push(
    settings: Settings,
    folder: Path,
    repo: str,
    *,
    base: str | None,
    description: str | None,
    tags: dict[str, str],
    evals: list[EvalRecord],
) -> Unchanged | None:
    """The version a non-strict embedded push of ``folder`` to ``repo`` would answer
    ``unchanged`` with, or None when that cannot be told cheaply (then push normally)."""
    if settings.url:
        return None
    catalog = _sqlite_file(settings.effective_database_url)
    if catalog is None or not catalog.is_file():
        return None
    try:
        return _answer(settings, catalog, folder, repo, base, description, tags, evals)
    except (LoraregError, OSError, sqlite3.Error, ValueError):
        return None  # the full path raises the same error, or succeeds where this could not


def _answer(
    settings: Settings,
    catalog: Path,
    folder: Path,
    repo: str,
    base: str | None,
    description: str | None,
    tags: dict[str, str],
    evals: list[EvalRecord],
) -> Unchanged | None:
    from registry.catalog.hash_index import HashIndex
    from registry.catalog.manifest import content_id
    from registry.catalog.push_request import PushRequest, validate_metadata
    from registry.catalog.refs import check_base_name, parse_repo
    from registry.client.fast_reads import identical_version_id, open_catalog
    from registry.formats.adapter import inspect_adapter, local_files

    presence = _presence(settings)
    if presence is None:
        return None
    target = parse_repo(repo)
    files = local_files(folder)
    contents = inspect_adapter(files, max_header_bytes=settings.max_header_bytes)
    index = HashIndex.in_cache(settings.effective_cache_dir)
    entries = []
    for rel in sorted(files):
        known = index.known((folder / rel).resolve())
        if known is None:
            return None  # new, changed or touched: the full path hashes it
        entries.append(FileEntry(path=rel, sha256=known[0], size=known[1]))
    req = PushRequest(
        repo=target,
        files=entries,
        author=settings.effective_author,
        base_model=base,
        description=description,
        tags=tags,
        evals=evals,
    )
    validate_metadata(req)
    the_base = base or contents.config.base_model_name_or_path
    if the_base is not None and base is None:
        check_base_name(the_base)  # InvalidName: the commit refuses it
    cid = content_id(entries)
    conn = open_catalog(catalog)
    if conn is None:
        return None  # missing, or another schema: the full path migrates or refuses
    try:
        same = identical_version_id(conn, target, cid, the_base)
        row = None
        if same is not None:
            row = conn.execute("SELECT number FROM versions WHERE id = ?", (same,)).fetchone()
    finally:
        conn.close()
    if row is None or not presence(sorted({f.sha256 for f in entries})):
        return None
    return Unchanged(
        ref=f"{target.namespace}/{target.name}:{row[0]}", content_id=cid, files=len(entries)
    )


def _sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL; None for any other database or form."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = url[len(prefix) :]
    return Path(path) if path and path != ":memory:" else None


def _presence(settings: Settings):  # type: ignore[no-untyped-def]
    """A function telling whether all the given blobs are stored, or None when this store
    cannot be asked cheaply here."""
    parts = urlsplit(settings.effective_storage_url)
    if parts.scheme == "file":
        from registry.storage import open_store

        store = open_store(settings)  # a LocalBlobStore: nothing heavy to import
        return lambda shas: all(store.exists(s) for s in shas)
    keys = static_aws_keys()
    if parts.scheme == "s3" and parts.netloc and settings.s3_endpoint_url and keys is not None:
        from registry.storage.s3_probe import S3Presence

        return S3Presence(settings.s3_endpoint_url, parts.netloc, parts.path, keys).all_stored
    return None
