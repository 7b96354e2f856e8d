"""Where base models are read from: a local folder, an ``s3://`` prefix, an ``hf://`` repo.

``inspect_base(SOURCE)`` is what ``lorareg base add NAME SOURCE`` calls. Every source
reads safetensors headers by byte range and counts the bytes it fetched, so registering
a 100 GB model costs a few megabytes of traffic.

sha256 per weight file (for the content hash), by source:

- folder: computed by streaming each file (local reads are cheap; ``compute_sha256``
  defaults to True);
- S3: taken from object metadata ``sha256`` or a full-object ``ChecksumSHA256``; never
  computed unless ``compute_sha256=True``, because that downloads the whole model.
  Multipart uploads carry a composite checksum (``...-N``), which is not the file's
  sha256, so it is ignored;
- hub: the LFS sha256 from the repository's file metadata (always present for LFS files).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from registry.compat.fingerprint import BaseModelInfo, BaseSource, read_base_model
from registry.errors import BaseSourceNotFound, InvalidBaseModel, InvalidInput, SourceNotAllowed
from registry.formats.safetensors import DEFAULT_MAX_HEADER_BYTES

CHUNK = 8 * 1024 * 1024


class LocalFolderSource:
    """A base model folder on this machine (symlinks followed, as in an HF cache snapshot)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = str(folder.absolute())
        self.bytes_read = 0

    def files(self) -> dict[str, int]:
        if not self.folder.exists():
            raise BaseSourceNotFound(
                f"{self.folder}: no such folder; pass the folder holding the model's"
                " config.json and .safetensors files, or an s3:// or hf:// source"
            )
        if not self.folder.is_dir():
            raise InvalidBaseModel(
                f"{self.folder}: not a folder; pass the folder that holds the .safetensors files"
            )
        return {
            p.name: p.stat().st_size
            for p in sorted(self.folder.iterdir())
            if p.is_file() and not p.name.startswith(".")
        }

    def read(self, path: str, offset: int, length: int) -> bytes:
        with open(self.folder / path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(length)
        self.bytes_read += len(data)
        return data

    def read_small(self, path: str, size: int) -> bytes:
        return self.read(path, 0, size)

    def known_sha256(self, path: str) -> str | None:
        return None

    def stream(self, path: str) -> Iterator[bytes]:
        with open(self.folder / path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                self.bytes_read += len(chunk)
                yield chunk


def parse_hf_source(spec: str) -> tuple[str, str | None]:
    """``hf://org/repo@revision`` -> ``("org/repo", "revision")``; revision None for main."""
    rest = spec.removeprefix("hf://")
    repo_id, _, revision = rest.partition("@")
    repo_id = repo_id.strip("/")
    parts = repo_id.split("/")
    if not repo_id or len(parts) > 2 or any(not p for p in parts):
        raise InvalidInput(
            f"{spec!r} is not a hub source; write hf://org/repo or hf://org/repo@revision"
        )
    return repo_id, (revision or None)


def check_server_source(
    spec: str, *, admin: bool, roots: Sequence[Path], buckets: Collection[str]
) -> None:
    """Refuse a source a server must not read for this caller, before touching it.

    Over HTTP the server would read with its own rights: its disk and its S3 credentials.
    Folders and buckets are for unscoped admins only, and only under ``roots``
    (LORAREG_BASE_ROOTS) or in ``buckets`` (LORAREG_BASE_BUCKETS); hub sources follow the
    usual rules. The refusal is the same whether or not the path exists, and never lists
    anything.
    """
    if spec.startswith("hf://"):
        return
    kind = "bucket" if spec.startswith("s3://") else "folder"
    if not admin:
        raise SourceNotAllowed(
            f"reading a {kind} on the server is for admins; register the base from"
            " hf://org/repo@revision, or ask an admin"
        )
    if kind == "bucket":
        bucket = spec.removeprefix("s3://").partition("/")[0]
        if bucket not in set(buckets):
            raise SourceNotAllowed(
                f"s3://{bucket} is not a bucket this server reads base models from;"
                " an operator lists them in LORAREG_BASE_BUCKETS"
            )
        return
    if "://" in spec and not spec.startswith("file://"):
        return  # an unknown scheme: open_base_source refuses it as invalid input
    if not _inside_roots(spec.removeprefix("file://"), roots):
        raise SourceNotAllowed(
            f"{spec[:300]!r} is not under a folder this server reads base models from;"
            " give an absolute path without '..' under one of LORAREG_BASE_ROOTS"
        )


def _inside_roots(raw: str, roots: Sequence[Path]) -> bool:
    """Lexically under a root first (nothing outside is touched), then once resolved."""
    if not raw.startswith("/") or "\x00" in raw or os.path.normpath(raw) != raw.rstrip("/"):
        return False
    path = Path(raw)
    for root in roots:
        root = Path(os.path.normpath(root))
        if path.is_relative_to(root):
            # A symlink under the root may lead anywhere: judge where it really goes.
            return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
    return False


def open_base_source(
    spec: str,
    *,
    s3_endpoint_url: str | None = None,
    s3_client: Any | None = None,
    hf_endpoint: str | None = None,
    hf_token: str | bool | None = None,
    hf_cache_dir: Path | None = None,
) -> BaseSource:
    """The source for ``spec``: ``s3://bucket/prefix``, ``hf://org/repo@rev`` or a folder.

    ``s3_endpoint_url`` is ``settings.s3_endpoint_url`` (None for AWS); credentials come
    from the standard AWS environment. ``hf_endpoint`` None means huggingface_hub's own
    default, which honours ``HF_ENDPOINT``; ``hf_token`` None means its usual token lookup
    (``HF_TOKEN``, the saved login).
    """
    if spec.startswith("s3://"):
        from registry.compat.source_s3 import S3Source

        return S3Source.from_url(spec, endpoint_url=s3_endpoint_url, client=s3_client)
    if spec.startswith("hf://"):
        from registry.compat.source_hf import HubSource

        repo_id, revision = parse_hf_source(spec)
        return HubSource(
            repo_id, revision, endpoint=hf_endpoint, token=hf_token, cache_dir=hf_cache_dir
        )
    if "://" in spec and not spec.startswith("file://"):
        raise InvalidInput(
            f"{spec!r}: unknown source; use a folder path, s3://bucket/prefix or"
            " hf://org/repo@revision"
        )
    return LocalFolderSource(Path(spec.removeprefix("file://")).expanduser())


def inspect_base(
    source: str | BaseSource,
    *,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    compute_sha256: bool | None = None,
    s3_endpoint_url: str | None = None,
    s3_client: Any | None = None,
    hf_endpoint: str | None = None,
    hf_token: str | bool | None = None,
    hf_cache_dir: Path | None = None,
) -> BaseModelInfo:
    """Read a base model's tensors, architecture and fingerprints from ``source``.

    ``compute_sha256`` None means: yes for a local folder, no elsewhere (see the module
    docstring). Raises BaseSourceNotFound, InvalidBaseModel, InvalidInput; S3 and hub
    failures become Forbidden / Unauthorized / Unavailable with the reason.
    """
    src = (
        open_base_source(
            source,
            s3_endpoint_url=s3_endpoint_url,
            s3_client=s3_client,
            hf_endpoint=hf_endpoint,
            hf_token=hf_token,
            hf_cache_dir=hf_cache_dir,
        )
        if isinstance(source, str)
        else source
    )
    if compute_sha256 is None:
        compute_sha256 = isinstance(src, LocalFolderSource)
    return read_base_model(src, max_header_bytes=max_header_bytes, compute_sha256=compute_sha256)
