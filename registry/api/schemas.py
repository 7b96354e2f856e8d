"""Request bodies of the v1 API (responses are the domain objects themselves)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from registry.domain import EvalRecord, FileEntry


class UploadRequest(BaseModel):
    files: list[FileEntry] = Field(max_length=1000)


class CommitRequest(BaseModel):
    files: list[FileEntry] = Field(max_length=1000)
    base_model: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    tags: dict[str, str] = Field(default_factory=dict)
    evals: list[EvalRecord] = Field(default_factory=list, max_length=256)


class TagRequest(BaseModel):
    tags: dict[str, str]
