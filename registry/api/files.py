"""Serving a blob over HTTP: a redirect to a presigned URL on S3, else a streamed body with
``Range`` support. Shared by the v1 download route and the Hugging Face resolve route."""

from __future__ import annotations

import re
from collections.abc import Iterator

from fastapi import Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from registry.errors import RangeNotSatisfiable
from registry.storage.base import BlobStore

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One byte range as (start, end inclusive), or None for the whole file.

    Multi-range requests are answered with the whole file, which RFC 9110 allows.
    """
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix range: the last N bytes
        n = int(m.group(2))
        if n == 0:
            raise RangeNotSatisfiable(f"range {header} selects no bytes")
        return max(0, size - n), size - 1
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(f"range {header} is outside the file's {size} bytes")
    return start, min(end, size - 1)


def blob_response(
    request: Request,
    store: BlobStore,
    *,
    sha256: str,
    size: int,
    filename: str,
    headers: dict[str, str],
    presign_ttl_s: int,
) -> Response:
    """The response for GET of one stored file; ``headers`` are added in every case."""
    headers = {**headers, "Accept-Ranges": "bytes", "ETag": f'"{sha256}"'}
    url = store.presign_get(sha256, expires_s=presign_ttl_s, filename=filename)
    if url is not None:
        return RedirectResponse(url, status_code=302, headers=headers)
    try:
        rng = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        headers["Content-Range"] = f"bytes */{size}"
        raise
    if rng is None:
        return StreamingResponse(
            store.iter_bytes(sha256),
            media_type="application/octet-stream",
            headers={**headers, "Content-Length": str(size)},
        )
    start, end = rng
    return StreamingResponse(
        _iter_range(store, sha256, start, end),
        status_code=206,
        media_type="application/octet-stream",
        headers={
            **headers,
            "Content-Length": str(end - start + 1),
            "Content-Range": f"bytes {start}-{end}/{size}",
        },
    )


def _iter_range(store: BlobStore, sha256: str, start: int, end: int) -> Iterator[bytes]:
    chunk = 4 * 1024 * 1024
    pos = start
    while pos <= end:
        n = min(chunk, end - pos + 1)
        data = store.read_range(sha256, pos, n)
        if not data:
            return
        yield data
        pos += len(data)
