"""Sending a push's new blobs while the process is still opening the catalog.

An embedded ``lorareg push`` spends about a second importing and opening the catalog (the
ORM, pydantic's models) before ``LocalClient.push`` uploads a byte, while the store (moto,
MinIO, S3) sits idle. ``upload_ahead`` starts a thread, as the command starts, that waits
for the folder's hashes (``hash_ahead``), validates the folder exactly as ``prepare_push``
does (nothing of an adapter the push refuses is sent), and stores each blob the store does
not hold yet through the store's own verified upload (``put_file``: the bytes it sends must
hash to the blob's sha256, else nothing is stored). ``LocalClient.push`` then finds those
blobs stored and verified by this process and sends them no more.

Why this is as safe as uploading after opening the catalog: the version still becomes
visible only at the commit, after every blob is stored; a blob uploaded here is new (its
object is fresh, so gc's grace period keeps it until the push records it; an existing blob
is left to the normal path, which records the reuse before checking it is there); a file
changed after it was hashed is either refused by the verified upload or hashed again by
``prepare_push``, and its stale blob is only an orphan for gc. A failure here is dropped:
the normal path uploads that blob again and reports its own error. A push that fails
after this started (the catalog cannot be opened, an interrupt) may leave blobs or an
unfinished multipart upload behind, as a push killed mid-upload always could: ``lorareg
gc`` removes them after its grace period.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.catalog.transfer import HashAhead, Hashed
    from registry.config import Settings
    from registry.storage.base import BlobStore, Progress


class UploadAhead:
    """Uploads the hashed, validated files of ``ahead``'s folder to ``store`` on a thread."""

    def __init__(
        self,
        ahead: HashAhead,
        settings: Settings,
        *,
        max_header_bytes: int,
        progress: Progress | None,
    ) -> None:
        self.ahead = ahead
        self.settings = settings
        self.max_header_bytes = max_header_bytes
        self.progress = progress
        # sha256 -> what hashing read (None when the index answered): stored by this thread.
        self.sent: dict[str, Hashed | None] = {}
        # Set once the store's client is built (or building it failed).
        self.ready = threading.Event()
        # Imported here, on the calling thread: the uploading thread imports only the store.
        from registry.formats.adapter import inspect_adapter, local_files

        self._inspect = inspect_adapter
        self._local_files = local_files
        self._thread = threading.Thread(target=self._run, name="upload-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        store: BlobStore | None = None
        try:
            # Opened here, first: importing boto3 and building its client overlaps the
            # hashing, and the main thread waits for it (``wait_ready``) before importing
            # the catalog, which then overlaps the upload instead of delaying its start.
            from registry.storage import open_store

            try:
                store = open_store(self.settings)
                getattr(store, "client", None)  # S3: build the client now
            finally:
                self.ready.set()
            files = self._local_files(self.ahead.folder)
            self._inspect(files, max_header_bytes=self.max_header_bytes)  # refused: send nothing
            hashed = self.ahead.join()
            for rel in sorted(files):
                done = hashed.get((self.ahead.folder / rel).resolve())
                if done is None:
                    continue  # changed since it was hashed: prepare_push hashes it again
                sha256, size, read = done
                if sha256 in self.sent:
                    continue
                if store.put_file(sha256, self.ahead.folder / rel, progress=self.progress):
                    self.sent[sha256] = read
        except Exception:  # noqa: S110 - the normal path uploads again and reports the error
            pass
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()

    def join(self) -> dict[str, Hashed | None]:
        """The blobs this thread stored (each verified by the store's upload), by sha256."""
        self._thread.join()
        return dict(self.sent)


_UPLOADS: dict[Path, UploadAhead] = {}


def upload_ahead(folder: Path, settings: Settings, *, progress: Progress | None) -> None:
    """Start uploading ``folder``'s new blobs to the configured store, once ``hash_ahead``
    of it has hashed them; the next ``LocalClient.push`` of it waits for and uses them."""
    from registry.catalog import transfer

    try:
        key = folder.resolve()
    except OSError:
        return
    ahead = transfer._AHEAD.get(key)
    if ahead is None or key in _UPLOADS:
        return
    _UPLOADS[key] = UploadAhead(
        ahead, settings, max_header_bytes=settings.max_header_bytes, progress=progress
    )


def wait_ready(folder: Path, *, timeout_s: float = 10.0) -> None:
    """Wait (at most ``timeout_s``) until the upload started for ``folder`` has its store
    client: the caller's own imports then run while the bytes go out."""
    try:
        upload = _UPLOADS.get(folder.resolve())
    except OSError:
        return
    if upload is not None:
        upload.ready.wait(timeout_s)


def take_upload_ahead(folder: Path) -> UploadAhead | None:
    """The upload started for ``folder`` (once: it is forgotten here)."""
    try:
        return _UPLOADS.pop(folder.resolve(), None)
    except OSError:
        return None
