"""Reading the interference cache (``interference_pairs``) without PyTorch: the promotion
gate reads the figures that ``lorareg interference`` (``library_map``) computed and stored."""

from __future__ import annotations

import math

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import models as m

ALGORITHM = 1  # bump when the stored numbers change meaning


def pair_key(content_x: str, content_y: str) -> tuple[str, str]:
    return (min(content_x, content_y), max(content_x, content_y))


def cached_modules(
    session: Session, content_x: str, content_y: str
) -> dict[str, list[float]] | None:
    """Per module ``[inner, norm_sq_x, norm_sq_y]`` of a pair (oriented by content id), or
    None when it was never computed."""
    cx, cy = pair_key(content_x, content_y)
    return session.scalar(
        select(m.InterferencePair.modules).where(
            m.InterferencePair.content_x == cx,
            m.InterferencePair.content_y == cy,
            m.InterferencePair.algorithm == ALGORITHM,
        )
    )


def worst_module(modules: dict[str, list[float]]) -> tuple[str | None, float]:
    """The shared module with the largest |cosine| and that |cosine| (0.0: none shared)."""
    worst: tuple[str | None, float] = (None, 0.0)
    for name, (inner, nx, ny) in sorted(modules.items()):
        denom = math.sqrt(nx * ny)
        cos = min(1.0, abs(inner) / denom) if denom > 0 else 0.0  # rounding past 1
        if cos > worst[1]:
            worst = (name, cos)
    return worst
