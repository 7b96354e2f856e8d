"""The JSON bodies and headers of the Hugging Face Hub-compatible routes.

Shapes follow what huggingface_hub parses (``ModelInfo``, ``RepoSibling``, ``RepoFile``,
``RepoFolder`` in ``hf_api.py``; ``get_hf_file_metadata`` in ``file_download.py``).

Every file is described as a Git LFS file: lorareg knows each file's sha256 and size, the
Hub's identity for LFS files, and the ETag of every file is its sha256 (quoted, as the
Hub sends it for LFS files), so a client's cache keys blobs by sha256 and a file shared
by two versions is downloaded once. ``blobId``/``oid`` is the git blob id of the LFS
pointer file, as on the Hub, computable from sha256 and size without reading the bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from registry.domain import FileEntry, VersionInfo
from registry.formats.peft import CONFIG_NAME


@dataclass(frozen=True)
class HubView:
    """A version as the hub protocol shows it: commit id, manifest, and config bytes to serve
    instead of the stored blob (set in export mode when the export rewrote the config)."""

    version: VersionInfo
    commit: str
    files: list[FileEntry]
    config_bytes: bytes | None = None

    def file(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)

    def served_bytes(self, path: str) -> bytes | None:
        """Bytes served from memory for ``path`` (the exported config), else None."""
        return self.config_bytes if path == CONFIG_NAME else None


def lfs_pointer(entry: FileEntry) -> bytes:
    """The Git LFS pointer file for a blob, as the Hub stores it in git."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{entry.sha256}\n"
        f"size {entry.size}\n"
    ).encode()


def git_blob_id(data: bytes) -> str:
    """Git's object id of a blob holding ``data``."""
    h = hashlib.sha1(f"blob {len(data)}\0".encode(), usedforsecurity=False)
    h.update(data)
    return h.hexdigest()


def hub_date(dt: datetime) -> str:
    """The Hub's timestamp format, which huggingface_hub's ``parse_datetime`` expects."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _lfs(entry: FileEntry) -> dict[str, Any]:
    return {"size": entry.size, "pointerSize": len(lfs_pointer(entry))}


def sibling(entry: FileEntry) -> dict[str, Any]:
    return {
        "rfilename": entry.path,
        "size": entry.size,
        "blobId": git_blob_id(lfs_pointer(entry)),
        "lfs": {"sha256": entry.sha256, **_lfs(entry)},
    }


def _tags(v: VersionInfo) -> list[str]:
    tags = ["peft", "safetensors", "lora"]
    if v.base_model:
        tags += [f"base_model:{v.base_model}", f"base_model:adapter:{v.base_model}"]
    return tags


def model_info(view: HubView) -> dict[str, Any]:
    """``GET /api/models/{repo}[/revision/{rev}]``: what ``HfApi.model_info`` parses."""
    v = view.version
    repo_id = f"{v.namespace}/{v.name}"
    card: dict[str, Any] = {"library_name": "peft", "tags": _tags(v)}
    if v.base_model:
        card["base_model"] = v.base_model
    return {
        "_id": view.commit[:24],
        "id": repo_id,
        "modelId": repo_id,
        "author": v.namespace,
        "sha": view.commit,
        "lastModified": hub_date(v.created_at),
        "createdAt": hub_date(v.created_at),
        "private": False,
        "disabled": False,
        "gated": False,
        "downloads": 0,
        "likes": 0,
        "library_name": "peft",
        "tags": _tags(v),
        "cardData": card,
        "siblings": [sibling(f) for f in view.files],
        "spaces": [],
        "usedStorage": sum(f.size for f in view.files),
        # lorareg's own identity of the version, for clients that know to look.
        "lorareg": {
            "version": v.number,
            "content_id": v.content_id,
            "base_model": v.base_model,
            "exported": view.commit != v.content_id,
        },
    }


def _last_commit(view: HubView) -> dict[str, Any]:
    v = view.version
    title = f"v{v.number}" + (f": {v.description.splitlines()[0]}" if v.description else "")
    return {"id": view.commit, "title": title[:200], "date": hub_date(v.created_at)}


def _file_entry(view: HubView, f: FileEntry, expand: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "file",
        "oid": git_blob_id(lfs_pointer(f)),
        "size": f.size,
        "path": f.path,
        "lfs": {"oid": f.sha256, **_lfs(f)},
    }
    if expand:
        out["lastCommit"] = _last_commit(view)
    return out


def _folder_entry(view: HubView, path: str, expand: bool) -> dict[str, Any]:
    # No git trees exist here: a stable id derived from the commit and the folder path.
    oid = hashlib.sha1(f"tree {view.commit} {path}".encode(), usedforsecurity=False)
    out: dict[str, Any] = {"type": "directory", "oid": oid.hexdigest(), "path": path}
    if expand:
        out["lastCommit"] = _last_commit(view)
    return out


def _folders(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def tree(
    view: HubView, folder: str, *, recursive: bool, expand: bool
) -> list[dict[str, Any]] | None:
    """Entries under ``folder`` ("" for the root), folders first; None when no such folder."""
    prefix = f"{folder}/" if folder else ""
    below = [f for f in view.files if f.path.startswith(prefix)]
    if folder and not below:
        return None
    folders: set[str] = set()
    files: list[FileEntry] = []
    for f in below:
        rest = f.path[len(prefix) :]
        if "/" not in rest or recursive:
            files.append(f)
        subfolders = [prefix + p for p in _folders(rest)]
        folders.update(subfolders if recursive else subfolders[:1])
    return [_folder_entry(view, p, expand) for p in sorted(folders)] + [
        _file_entry(view, f, expand) for f in sorted(files, key=lambda f: f.path)
    ]


def paths_info(view: HubView, paths: list[str], *, expand: bool) -> list[dict[str, Any]]:
    """``POST .../paths-info/{rev}``: the entries among ``paths`` that exist, in order."""
    folders = {p for f in view.files for p in _folders(f.path)}
    out: list[dict[str, Any]] = []
    for p in paths:
        p = p.strip("/")
        entry = view.file(p)
        if entry is not None:
            out.append(_file_entry(view, entry, expand))
        elif p in folders:
            out.append(_folder_entry(view, p, expand))
    return out


def file_headers(commit: str, entry: FileEntry) -> dict[str, str]:
    """Headers of ``HEAD``/``GET .../resolve/...`` (and of its redirect) for one file."""
    etag = f'"{entry.sha256}"'
    return {
        "X-Repo-Commit": commit,
        "ETag": etag,
        "X-Linked-Etag": etag,
        "X-Linked-Size": str(entry.size),
        "Accept-Ranges": "bytes",
    }
