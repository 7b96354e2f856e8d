"""What a push asks for, and the checks of everything in it but the bytes.

Apart from ``catalog.push`` so that callers that only validate (the remote client, the
unchanged re-push of ``client.repush``) do not load SQLAlchemy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from registry.catalog.refs import Repo, check_base_name
from registry.domain import EvalRecord, FileEntry
from registry.errors import InvalidInput
from registry.formats.adapter import check_file_names
from registry.storage.base import check_sha256

MAX_TAGS = 64


@dataclass(frozen=True)
class PushRequest:
    repo: Repo
    files: list[FileEntry]
    author: str
    base_model: str | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    evals: list[EvalRecord] = field(default_factory=list)
    # The non-primary regions each new blob needs a copy in (``Settings.replica_regions``).
    regions: tuple[str, ...] = ()


def validate_metadata(req: PushRequest) -> None:
    """Cheap checks of everything but the bytes; run before any upload."""
    if not req.files:
        raise InvalidInput("the push holds no files")
    check_file_names(f.path for f in req.files)
    for f in req.files:
        check_sha256(f.sha256)
        if f.size < 0:
            raise InvalidInput(f"{f.path}: negative size")
    if req.base_model is not None:
        check_base_name(req.base_model)
    check_tags(req.tags)
    for e in req.evals:
        check_eval(e)
    if req.description is not None:
        if len(req.description) > 10_000:
            raise InvalidInput("description is over 10,000 characters")
        check_text(req.description, "description")


def check_text(value: str, what: str) -> None:
    """Free text the catalog stores: no NUL (PostgreSQL cannot hold one; SQLite would)."""
    if "\x00" in value:
        raise InvalidInput(f"{what} contains a NUL character; remove it")


def check_tags(tags: dict[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags per version")
    for k, v in tags.items():
        if (
            not k
            or len(k) > 128
            or not k.replace("-", "").replace("_", "").replace(".", "").isalnum()
        ):
            raise InvalidInput(f"invalid tag key {k!r}: use letters, digits, '.', '_' or '-'")
        if len(v) > 1024:
            raise InvalidInput(f"tag {k!r}: value over 1024 characters")
        check_text(v, f"tag {k!r}")


def check_eval(e: EvalRecord) -> None:
    if not e.metric or len(e.metric) > 128:
        raise InvalidInput(f"invalid eval metric name {e.metric!r}")
    check_text(e.metric, "eval metric name")
    if e.dataset is not None:
        check_text(e.dataset, f"eval {e.metric}: dataset")
    if not math.isfinite(e.value):
        raise InvalidInput(f"eval {e.metric}: value must be a finite number, got {e.value}")
