"""Receiving an uploaded blob: spooled to a temporary file while hashed, then stored."""

from __future__ import annotations

import hashlib
import os
import tempfile

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from registry.errors import IntegrityError, InvalidInput
from registry.storage.base import BlobStore

MAX_BLOB_BYTES = 64 * 1024**3


async def receive_blob(store: BlobStore, sha256: str, request: Request) -> bool:
    """Store the request body as blob ``sha256``; IntegrityError (nothing stored) on mismatch."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BLOB_BYTES:
        raise InvalidInput(f"blob of {declared} bytes is over the {MAX_BLOB_BYTES}-byte limit")
    # Read and verify the bytes even when the blob is stored: answering early would tell
    # any writer that some tenant holds a blob with this hash.
    fd, tmp = tempfile.mkstemp(prefix="lorareg-upload-")
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
            raise IntegrityError(
                f"uploaded bytes hash to {h.hexdigest()[:12]}, not {sha256[:12]}; nothing stored"
            )
        from pathlib import Path

        return bool(await run_in_threadpool(store.put_file, sha256, Path(tmp)))
    finally:
        os.unlink(tmp)
