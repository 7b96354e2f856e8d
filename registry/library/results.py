"""The adapter library's results: pydantic models the API returns and both clients parse.

Kept free of PyTorch so a client talking to a server needs none.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from registry.domain import VersionInfo


class ModuleResult(BaseModel):
    module: str
    rank_before: int | None = None
    rank: int
    relative_error: float = 0.0


class LibraryVersion(BaseModel):
    """A version written by compose or compress, with what was lost per module."""

    version: VersionInfo
    operation: str
    inputs: list[str]
    weights: list[float] = Field(default_factory=list)
    method: str | None = None
    max_rank: int
    max_relative_error: float
    modules: list[ModuleResult]
    interference: list[dict[str, Any]] = Field(default_factory=list)
    check: dict[str, Any] | None = None


class ModuleAnalysis(BaseModel):
    module: str
    rank: int
    shape: list[int]
    singular_values: list[float]
    norm: float
    rank_99: int
    rank_999: int
    relative_update: float | None


class AnalysisResult(BaseModel):
    ref: str
    base_model: str | None
    max_rank: int
    rank_99: int
    rank_999: int
    max_lora_rank: int | None
    vllm_default_fits: bool
    stored_bytes: int
    slot_bytes: int
    slot_bytes_at_rank_999: int
    modules: list[ModuleAnalysis]
    warnings: list[str]


class PairResult(BaseModel):
    x: str
    y: str
    modules: int
    cosine: float
    mean_abs_cosine: float
    max_abs_cosine: float
    worst_module: str | None
    worst_cosine: float
    overlap_x: float
    overlap_y: float
    top: list[dict[str, Any]]


class LibraryMap(BaseModel):
    base_model: str | None
    adapters: list[str]
    pairs: list[PairResult]
    computed_pairs: int
    cached_pairs: int

    def cosine(self, x: str, y: str) -> float | None:
        for p in self.pairs:
            if {p.x, p.y} == {x, y}:
                return p.cosine
        return None
