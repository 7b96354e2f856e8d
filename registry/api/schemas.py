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


class PromoteRequest(BaseModel):
    to: str = Field(max_length=32)
    reason: str | None = Field(default=None, max_length=2000)


class AliasRequest(BaseModel):
    version: int = Field(ge=1, le=2**31 - 1)
    reason: str | None = Field(default=None, max_length=2000)


class EvalsRequest(BaseModel):
    evals: list[EvalRecord] = Field(min_length=1, max_length=256)


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    role: str
    namespaces: list[str] | None = None
    expires_in_days: float | None = Field(default=None, gt=0, le=36500)


class WebhookRequest(BaseModel):
    url: str = Field(max_length=2048)
    namespace: str | None = None
    kinds: list[str] | None = None
    secret: str | None = Field(default=None, min_length=16, max_length=128)


class BaseRequest(BaseModel):
    name: str = Field(max_length=200)
    source: str = Field(max_length=2048)


class CheckRequest(BaseModel):
    base: str = Field(max_length=200)
    engines: list[str] = Field(default_factory=list, max_length=8)


class MergeRequest(BaseModel):
    adapters: list[str] = Field(min_length=1, max_length=32)
    base: str = Field(max_length=200)
    weights: list[float] | None = None
    method: str = "linear"
    svd_rank: int | None = Field(default=None, ge=1, le=65536)
    output: str | None = None
    device: str = "auto"
    dtype: str | None = None
