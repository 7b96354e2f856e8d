"""The exact algebra of low-rank deltas, in numpy (no torch, no database): what the library's
interference map and the promotion gate's interference bound both compute.

A LoRA module's change is ``delta = B @ A`` (the scale already on ``B``), ``A`` r x d_in,
``B`` d_out x r. The Frobenius inner product of two such changes never needs d_out x d_in::

    <B1 A1, B2 A2> = tr((B1^T B2)(A2 A1^T)) = sum((B1^T B2) * (A1 A2^T))   O(r1 r2 (d_in+d_out))

Over many adapters of one module it is two GEMMs: stack every adapter's B side by side
(``B_all``, d_out x sum r) and every A on top of each other (``A_all``, sum r x d_in); block
(i, j) of ``B_all^T B_all`` times block (i, j) of ``A_all A_all^T``, summed, is
``<delta_i, delta_j>``, and the diagonal blocks give the squared norms. ``gram_inner`` does
that for all pairs of a set (``x.T @ x`` is a symmetric rank-k update: half the flops of a
general product); ``cross_inner`` does it for some rows against some columns (a new version
against the library: one block row).

Products run in the factors' dtype (float32 for stored adapters); the elementwise products
and block sums are accumulated in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.floating]

# The most stacked ranks (sum r) callers should put in one product: its R x R products are
# the working memory (at 4096: 64 MiB in float32, 128 MiB in float64); larger sets go in
# blocks (``registry.library.interference`` splits them).
MAX_STACKED_RANK = 4096


def pair_inner(b_x: Array, a_x: Array, b_y: Array, a_y: Array) -> float:
    """``<B_x A_x, B_y A_y>`` (scales on B) in O(r_x r_y (d_in + d_out))."""
    g = (b_x.T @ b_y).astype(np.float64) * (a_x @ a_y.T).astype(np.float64)
    return float(g.sum())


def norm_sq(b: Array, a: Array) -> float:
    """``||B A||_F^2`` (never negative: rounding of an almost-zero change is clamped)."""
    return max(pair_inner(b, a, b, a), 0.0)


def _offsets(ranks: Sequence[int]) -> npt.NDArray[np.intp]:
    return np.concatenate([[0], np.cumsum(ranks)]).astype(np.intp)


def _block_sums(
    h: npt.NDArray[np.float64], rows: Sequence[int], cols: Sequence[int]
) -> npt.NDArray[np.float64]:
    """Sum of each (row block, column block) of ``h`` (blocks sized by the ranks)."""
    ro, co = _offsets(rows), _offsets(cols)
    per_col = np.add.reduceat(h, co[:-1], axis=1) if h.shape[1] else h
    out = np.add.reduceat(per_col, ro[:-1], axis=0) if h.shape[0] else per_col
    return np.asarray(out, dtype=np.float64)


def gram_inner(bs: Sequence[Array], as_: Sequence[Array]) -> npt.NDArray[np.float64]:
    """The n x n matrix of ``<B_i A_i, B_j A_j>`` over every pair of one module's n adapters
    (the diagonal: the squared norms), from one Gram product per side."""
    ranks = [int(a.shape[0]) for a in as_]
    bt_all = np.concatenate([b.T for b in bs], axis=0)  # R x d_out: B_all^T, rows contiguous
    g_b = bt_all @ bt_all.T
    del bt_all
    a_all = np.concatenate(as_, axis=0)  # R x d_in
    g_a = a_all @ a_all.T
    del a_all
    h = g_b.astype(np.float64)
    h *= g_a
    del g_b, g_a
    out = _block_sums(h, ranks, ranks)
    return (out + out.T) / 2  # exactly symmetric (the two triangles round alike anyway)


def cross_inner(
    row_bs: Sequence[Array],
    row_as: Sequence[Array],
    col_bs: Sequence[Array],
    col_as: Sequence[Array],
) -> npt.NDArray[np.float64]:
    """The rows x columns matrix of ``<B_i A_i, B_j A_j>`` (i a row adapter, j a column
    adapter): one product per side, ``B_rows^T B_cols`` and ``A_rows A_cols^T``."""
    rr = [int(a.shape[0]) for a in row_as]
    cr = [int(a.shape[0]) for a in col_as]
    bt_rows = np.concatenate([b.T for b in row_bs], axis=0)
    bt_cols = np.concatenate([b.T for b in col_bs], axis=0)
    h = (bt_rows @ bt_cols.T).astype(np.float64)
    del bt_rows, bt_cols
    a_rows = np.concatenate(row_as, axis=0)
    a_cols = np.concatenate(col_as, axis=0)
    h *= a_rows @ a_cols.T
    return _block_sums(h, rr, cr)
