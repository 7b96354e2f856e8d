"""Export: a version's files as a serving engine wants them.

vLLM's LoRA resolvers (and other engines) compare ``base_model_name_or_path`` in
adapter_config.json with the name of the model they serve, exactly. Training scripts
write whatever path the base was loaded from (``/mnt/ckpt/llama``), so an export serves
adapter_config.json with that field set to the version's canonical base model name.

Exporting changes the config's bytes, hence its sha256 and size, and therefore the
manifest a client sees. Everything here is a pure function of the stored config bytes
and the base name, so every server replica computes the same bytes, the same sha256
and the same export commit id without coordination:

- ``exported_config(raw, base)``: the new bytes (the original bytes when nothing changes);
- ``export_commit(content_id)``: the 40-hex commit id of an export. It is the content
  id XOR a fixed mask, so any replica maps it back to the version without a table,
  and a Hugging Face client cache never mixes exported and original bytes under one
  commit;
- ``ExportCache``: exported config files memoised per (config sha256, base name).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from threading import Lock

from registry.catalog.queries import to_info, version_row
from registry.catalog.refs import CONTENT_ID_RE, Repo
from registry.db.database import Database
from registry.domain import FileEntry, VersionInfo
from registry.errors import VersionNotFound
from registry.formats.peft import CONFIG_NAME

BASE_KEY = "base_model_name_or_path"
# A fixed 160-bit mask: export commits never collide with content ids in practice.
_MASK = int(
    hashlib.sha1(b"lorareg export: base_model_name_or_path", usedforsecurity=False).hexdigest(), 16
)


def export_commit(content_id: str) -> str:
    """The commit id under which the export of ``content_id`` is served."""
    return f"{int(content_id, 16) ^ _MASK:040x}"


def content_id_of_export(commit: str) -> str:
    """The content id whose export has ``commit`` (the inverse of ``export_commit``)."""
    return export_commit(commit)  # XOR with the same mask is its own inverse


def resolve_export(db: Database, repo: Repo, revision: str) -> VersionInfo:
    """The version an export revision names: any plain revision, or an export commit."""
    with db.read() as session:
        try:
            return to_info(session, version_row(session, repo, revision))
        except VersionNotFound as not_plain:
            if not CONTENT_ID_RE.match(revision):
                raise
            try:
                row = version_row(session, repo, content_id_of_export(revision))
            except VersionNotFound:
                raise not_plain from None
            return to_info(session, row)


def exported_config(raw: bytes, base: str | None) -> bytes:
    """adapter_config.json with ``base_model_name_or_path`` set to ``base``.

    Returns ``raw`` itself when there is no canonical base or the field already holds it,
    so an export that changes nothing keeps the original sha256 (and clients' caches).
    Other keys keep their order and values; the output is 2-space indented JSON, as PEFT
    writes it.
    """
    if base is None:
        return raw
    doc = json.loads(raw.decode("utf-8"))
    if not isinstance(doc, dict) or doc.get(BASE_KEY) == base:
        return raw
    doc[BASE_KEY] = base
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass(frozen=True)
class ExportedFile:
    """The bytes of one exported file and the manifest entry that describes them."""

    entry: FileEntry
    data: bytes


@dataclass(frozen=True)
class Export:
    """A version as exported: its commit id, its manifest, and the rewritten config file."""

    commit: str
    files: list[FileEntry]
    config: ExportedFile | None

    @property
    def changed(self) -> bool:
        return self.config is not None


class ExportCache:
    """Exported config files by (stored config sha256, base name), least recently used out.

    Configs are a few kilobytes, so thousands fit in a few megabytes; the key is the
    stored blob, so versions that share a config share an entry.
    """

    def __init__(self, *, max_entries: int = 4096) -> None:
        self._files: OrderedDict[tuple[str, str | None], ExportedFile] = OrderedDict()
        self._max = max_entries
        self._lock = Lock()

    def config(self, entry: FileEntry, base: str | None, read: Callable[[], bytes]) -> ExportedFile:
        """The exported form of the config ``entry``; ``read`` fetches its stored bytes."""
        key = (entry.sha256, base)
        with self._lock:
            hit = self._files.get(key)
            if hit is not None:
                self._files.move_to_end(key)
                return hit
        raw = read()
        data = exported_config(raw, base)
        exported = ExportedFile(
            entry=FileEntry(
                path=entry.path, sha256=hashlib.sha256(data).hexdigest(), size=len(data)
            ),
            data=data,
        )
        with self._lock:
            self._files[key] = exported
            while len(self._files) > self._max:
                self._files.popitem(last=False)
        return exported


def export_version(
    version: VersionInfo, read: Callable[[FileEntry], bytes], cache: ExportCache
) -> Export:
    """The export of ``version``: the same files with adapter_config.json rewritten.

    When the rewrite changes nothing the export is the version itself (same commit, same
    manifest), so plain and exported downloads share every cached blob.
    """
    cfg = next((f for f in version.files if f.path == CONFIG_NAME), None)
    if cfg is None:
        return Export(commit=version.content_id, files=list(version.files), config=None)
    exported = cache.config(cfg, version.base_model, lambda: read(cfg))
    if exported.entry == cfg:
        return Export(commit=version.content_id, files=list(version.files), config=None)
    files = [exported.entry if f.path == CONFIG_NAME else f for f in version.files]
    return Export(commit=export_commit(version.content_id), files=files, config=exported)
