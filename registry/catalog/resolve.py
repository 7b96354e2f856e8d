"""The lookup serving systems call: which version a reference names, and where its bytes are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from registry.catalog.queries import to_info, version_row
from registry.catalog.refs import Repo
from registry.db.database import Database
from registry.domain import FileEntry, VersionInfo
from registry.formats.peft import PeftConfig


def resolve(
    db: Database,
    repo: Repo,
    *,
    ref: str = "latest",
    base: str | None = None,
) -> VersionInfo:
    with db.read() as session:
        return to_info(session, version_row(session, repo, ref, base=base))


def resolve_document(
    version: VersionInfo, *, url_for: Callable[[VersionInfo, FileEntry], str]
) -> dict[str, Any]:
    """The JSON a serving system gets: version, content id, config summary, files + URLs."""
    summary = (
        PeftConfig.model_validate(version.config).summary()
        if version.kind == "adapter"
        else {"kind": version.kind, **{k: version.config.get(k) for k in ("method", "inputs")}}
    )
    return {
        "namespace": version.namespace,
        "name": version.name,
        "version": version.number,
        "kind": version.kind,
        "content_id": version.content_id,
        "base_model": version.base_model,
        "config": summary,
        "size": version.size,
        "files": [
            {"path": f.path, "sha256": f.sha256, "size": f.size, "url": url_for(version, f)}
            for f in version.files
        ],
    }
