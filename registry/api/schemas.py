"""Request bodies of the v1 API (responses are the domain objects themselves)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from registry.domain import EvalRecord, FileEntry, MergeMethod, Stage


class Body(BaseModel):
    """A JSON request body. No string in it may hold a NUL character: PostgreSQL cannot
    store one and SQLite silently would, so it is refused here, alike on both."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if _holds_nul(data):
            raise ValueError("a string in the body contains a NUL character (\\u0000); remove it")
        return data


def _holds_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 32:  # deeper bodies fail their own validation
        return False
    if isinstance(value, dict):
        return any(_holds_nul(k, depth + 1) or _holds_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v, depth + 1) for v in value)
    return False


class UploadRequest(Body):
    files: list[FileEntry] = Field(max_length=1000)


class CommitRequest(Body):
    files: list[FileEntry] = Field(max_length=1000)
    base_model: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    tags: dict[str, str] = Field(default_factory=dict)
    evals: list[EvalRecord] = Field(default_factory=list, max_length=256)
    # Refuse (and record nothing) when the automatic check against the base FAILs.
    strict: bool = False


class TagRequest(Body):
    tags: dict[str, str]


class PromoteRequest(Body):
    # Checked by the service (one clear ``invalid_input``); the schema lists the stages.
    to: str = Field(max_length=32, json_schema_extra={"enum": [s.value for s in Stage]})
    reason: str | None = Field(default=None, max_length=2000)
    # Promote a variant of a running experiment and end that experiment.
    end_experiment: bool = False


class AliasRequest(Body):
    version: int = Field(ge=1, le=2**31 - 1)
    reason: str | None = Field(default=None, max_length=2000)


class EvalsRequest(Body):
    evals: list[EvalRecord] = Field(min_length=1, max_length=256)


class TokenRequest(Body):
    name: str = Field(min_length=1, max_length=128)
    role: str
    namespaces: list[str] | None = None
    expires_in_days: float | None = Field(default=None, gt=0, le=36500)


class WebhookRequest(Body):
    url: str = Field(max_length=2048)
    namespace: str | None = None
    kinds: list[str] | None = None
    secret: str | None = Field(default=None, min_length=16, max_length=128)


class BaseRequest(Body):
    name: str = Field(max_length=200)
    source: str = Field(max_length=2048)


class CheckRequest(Body):
    base: str = Field(max_length=200)
    engines: list[str] = Field(default_factory=list, max_length=8)


class MergeRequest(Body):
    adapters: list[str] = Field(min_length=1, max_length=32)
    base: str = Field(max_length=200)
    weights: list[float] | None = None
    method: str = Field(
        default=MergeMethod.SUM.value, json_schema_extra={"enum": [m.value for m in MergeMethod]}
    )
    svd_rank: int | None = Field(default=None, ge=1, le=65536)
    output: str | None = None
    device: str = "auto"
    dtype: str | None = None
