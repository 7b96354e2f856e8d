"""Build one version's folder on the node, complete, before any link points at it.

Files come from the node's blob cache (fetched once, verified by sha256); the folder is
assembled from hard links in ``tmp/`` and renamed into ``versions/`` in one step, so a
version folder that exists is whole. adapter_config.json is the export: its
``base_model_name_or_path`` is the name the engine serves the base model under, which
vLLM's resolver compares exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from registry.catalog.export import exported_config
from registry.formats.adapter import check_relative_path
from registry.formats.peft import CONFIG_NAME
from registry.sync.blobs import READ_ONLY, NodeBlobs
from registry.sync.layout import MARKER, NodeLayout, fsync_dir
from registry.sync.source import SyncSource, Target


@dataclass(frozen=True)
class Built:
    """A version folder and how its bytes got there."""

    folder: Path
    fetched: int  # bytes downloaded now
    reused: int  # bytes already in the node's cache
    new_folder: bool


def build_version(
    layout: NodeLayout,
    blobs: NodeBlobs,
    source: SyncSource,
    target: Target,
    *,
    model_name: str,
) -> Built:
    """The folder of ``target`` under ``versions/``, built now unless it already exists."""
    folder = layout.version_folder(target.repo, target.number, target.content_id)
    if folder.is_dir():
        return Built(folder=folder, fetched=0, reused=0, new_folder=False)
    fetched = reused = 0
    for f in target.files:
        check_relative_path(f.path)
        if blobs.has(f.sha256, f.size):
            reused += f.size
            continue
        fetched += blobs.add_stream(f.sha256, f.size, source.open_blob(f))
    on_disk = {f.path: f.sha256 for f in target.files}
    if CONFIG_NAME in on_disk:
        raw = blobs.read(on_disk[CONFIG_NAME])
        on_disk[CONFIG_NAME] = blobs.add_bytes(exported_config(raw, model_name))
    tmp = Path(tempfile.mkdtemp(prefix="version.", dir=layout.tmp))
    try:
        for path, sha in on_disk.items():
            blobs.link_into(sha, tmp / check_relative_path(path))
        _write_marker(tmp, target, on_disk, model_name)
        fsync_dir(tmp)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, folder)
        fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Built(folder=folder, fetched=fetched, reused=reused, new_folder=True)


def _write_marker(tmp: Path, target: Target, on_disk: dict[str, str], model_name: str) -> None:
    # Says which version a folder is, with the sha256 of every file as written here, so
    # an engine-side check (or a test) can prove the folder is one version, unmixed.
    marker = {
        "repo": str(target.repo),
        "version": target.number,
        "content_id": target.content_id,
        "base_model": target.base_model,
        "served_as": model_name,
        "files": {path: on_disk[path] for path in sorted(on_disk)},
    }
    path = tmp / MARKER
    with open(path, "w") as fh:
        json.dump(marker, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, READ_ONLY)


def read_marker(folder: Path) -> dict[str, object] | None:
    """The marker of a version folder, or None when it has none."""
    try:
        doc = json.loads((folder / MARKER).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
