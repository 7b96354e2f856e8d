"""Receiving an uploaded blob: spooled to a file in the server's spool folder while hashed,
then stored. Every body is read and hashed in full, even when the blob is stored already:
answering early would tell the caller that another tenant holds those bytes."""

from __future__ import annotations

import hashlib
import os

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from registry.errors import ChecksumMismatch, InvalidInput
from registry.storage.base import BlobStore
from registry.storage.spool import Spool

MAX_BLOB_BYTES = 64 * 1024**3


async def receive_blob(store: BlobStore, spool: Spool, sha256: str, request: Request) -> int:
    """Store the request body as blob ``sha256``; its size. ChecksumMismatch (nothing
    stored) when the bytes do not hash to ``sha256``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BLOB_BYTES:
        raise InvalidInput(f"blob of {declared} bytes is over the {MAX_BLOB_BYTES}-byte limit")
    fd, tmp = await run_in_threadpool(spool.create)
    try:
        h = hashlib.sha256()
        n = 0
        with os.fdopen(fd, "wb") as fh:
            async for chunk in request.stream():
                n += len(chunk)
                if n > MAX_BLOB_BYTES:
                    raise InvalidInput(f"blob is over the {MAX_BLOB_BYTES}-byte limit")
                h.update(chunk)
                fh.write(chunk)
        if h.hexdigest() != sha256:
            raise ChecksumMismatch(
                f"uploaded bytes hash to {h.hexdigest()[:12]}, not {sha256[:12]}; nothing stored"
            )
        await run_in_threadpool(store.put_file, sha256, tmp)
        return n
    finally:
        tmp.unlink(missing_ok=True)
