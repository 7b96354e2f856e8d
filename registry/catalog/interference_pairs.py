"""The interference cache (``interference_pairs``), without PyTorch: per pair of contents
(content ids, the smaller first) and per shared module ``[inner, norm_sq_x, norm_sq_y]``.
``lorareg interference`` (``library_map``) and the promotion gate both fill and read it."""

from __future__ import annotations

import math

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.db import models as m
from registry.db.database import Database

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


def read_pairs(
    db: Database, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, list[float]]]:
    """The stored pairs among ``keys`` (each a ``pair_key``), read 500 at a time."""
    out: dict[tuple[str, str], dict[str, list[float]]] = {}
    ordered = sorted(keys)
    with db.read() as s:
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            rows = s.execute(
                select(
                    m.InterferencePair.content_x,
                    m.InterferencePair.content_y,
                    m.InterferencePair.modules,
                ).where(
                    m.InterferencePair.algorithm == ALGORITHM,
                    tuple_(m.InterferencePair.content_x, m.InterferencePair.content_y).in_(chunk),
                )
            )
            for cx, cy, mods in rows:
                out[(cx, cy)] = mods
    return out


def worst_module(modules: dict[str, list[float]]) -> tuple[str | None, float]:
    """The shared module with the largest |cosine| and that |cosine| (0.0: none shared)."""
    worst: tuple[str | None, float] = (None, 0.0)
    for name, (inner, nx, ny) in sorted(modules.items()):
        denom = math.sqrt(nx * ny)
        cos = min(1.0, abs(inner) / denom) if denom > 0 else 0.0  # rounding past 1
        if cos > worst[1]:
            worst = (name, cos)
    return worst


def store_pairs(db: Database, docs: dict[tuple[str, str], dict[str, list[float]]]) -> None:
    """Store pairs keyed by ``pair_key`` (x the smaller content id). Best effort: a
    concurrent request that stored the same pair first wins."""
    try:
        with db.write() as s:
            s.add_all(
                m.InterferencePair(content_x=cx, content_y=cy, algorithm=ALGORITHM, modules=mods)
                for (cx, cy), mods in docs.items()
            )
        return
    except IntegrityError:
        pass  # someone stored some of them meanwhile: one by one, skipping those
    for (cx, cy), mods in docs.items():
        try:
            with db.write() as s:
                exists = s.scalar(
                    select(m.InterferencePair.id).where(
                        m.InterferencePair.content_x == cx,
                        m.InterferencePair.content_y == cy,
                        m.InterferencePair.algorithm == ALGORITHM,
                    )
                )
                if exists is None:
                    s.add(
                        m.InterferencePair(
                            content_x=cx, content_y=cy, algorithm=ALGORITHM, modules=mods
                        )
                    )
        except IntegrityError:
            continue
