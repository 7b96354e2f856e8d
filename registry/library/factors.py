"""Adapters as low-rank factors per module, and the exact algebra every library use case shares.

A LoRA module's change is ``delta = scale * B @ A`` with ``A`` (r x d_in) and ``B`` (d_out x r).
Nothing here forms a d_out x d_in matrix: inner products come from r x r Gram products
(``<B1 A1, B2 A2> = sum((B1.T B2) * (A1 A2.T))``) and spectra from QR factors of ``A.T`` and
``B`` (an r x r SVD of the core ``Rb @ Ra.T``).

Adapters are read with ``registry.merge.adapters.load_adapter`` (the merge engine's
validation and PEFT's scales: rsLoRA, rank_pattern, alpha_pattern), then anything that is not
a plain low-rank change is refused with ``UnsupportedAdapter``: DoRA rescales rows by a norm
of the merged weight, ``modules_to_save`` and trained biases replace base tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from registry.formats.peft import PeftConfig
from registry.library.errors import ShapeMismatch, UnsupportedAdapter
from registry.merge.adapters import AdapterInput, LoadedAdapter, load_adapter
from registry.merge.tensor_io import TensorFile


@dataclass(frozen=True)
class ModuleShape:
    rank: int
    in_features: int
    out_features: int
    embedding: bool = False


@dataclass(frozen=True)
class ModuleFactors:
    """One module's change ``scale * b @ a``."""

    module: str
    a: torch.Tensor
    b: torch.Tensor
    scale: float
    embedding: bool = False

    @property
    def rank(self) -> int:
        return int(self.a.shape[0])

    @property
    def shape(self) -> ModuleShape:
        return ModuleShape(self.rank, int(self.a.shape[1]), int(self.b.shape[0]), self.embedding)

    def dense(self) -> torch.Tensor:
        """The d_out x d_in delta: for tests and baselines only."""
        return self.scale * (self.b @ self.a)


class FactorSource(Protocol):
    """An adapter whose modules' factors can be read one module at a time (bounded memory)."""

    label: str

    @property
    def shapes(self) -> dict[str, ModuleShape]: ...

    def factors(self, module: str, *, dtype: torch.dtype = torch.float32) -> ModuleFactors: ...


class AdapterFactors:
    """A local PEFT folder as a FactorSource (tensors read on demand from its safetensors)."""

    def __init__(self, loaded: LoadedAdapter) -> None:
        self.loaded = loaded
        self.label = loaded.label
        self._file = TensorFile(loaded.weights_path)

    @property
    def config(self) -> PeftConfig:
        return self.loaded.config

    @property
    def shapes(self) -> dict[str, ModuleShape]:
        return {
            name: ModuleShape(m.rank, m.in_features, m.out_features, m.embedding)
            for name, m in self.loaded.loras.items()
        }

    def factors(self, module: str, *, dtype: torch.dtype = torch.float32) -> ModuleFactors:
        m = self.loaded.loras[module]
        a = self._read(m.a_key).to(dtype)
        b = self._read(m.b_key).to(dtype)
        return ModuleFactors(module, a, b, m.scale, m.embedding)

    def stored_dtype(self) -> str:
        dtypes = {self._file.info(m.a_key).dtype for m in self.loaded.loras.values()}
        return dtypes.pop() if len(dtypes) == 1 else "F32"

    def _read(self, key: str) -> torch.Tensor:
        info = self._file.info(key)
        return self._file.read_rows(key, 0, info.shape[0]).clone()

    def close(self) -> None:
        self._file.close()


def load_factors(folder: Path, *, label: str | None = None) -> AdapterFactors:
    """Validate a PEFT folder as a plain LoRA adapter; raises UnsupportedAdapter with the
    reason for DoRA, modules_to_save and trained biases, InvalidAdapter for anything else."""
    loaded = load_adapter(AdapterInput(Path(folder), label))
    name = loaded.label
    if loaded.dora:
        raise UnsupportedAdapter(
            f"adapter {name} is DoRA: its change rescales every row by a norm of the merged"
            " weight, which is not a low-rank delta, so it cannot be composed, compared or"
            " truncated exactly; merge it into the base with `lorareg merge --method sum`"
        )
    if loaded.replacements:
        kinds = sorted({r.kind for r in loaded.replacements})
        raise UnsupportedAdapter(
            f"adapter {name} replaces base tensors ({', '.join(kinds)}:"
            f" {loaded.replacements[0].target}); a full replacement is not a low-rank delta"
            " and PEFT cannot weight it either; retrain without modules_to_save / bias"
        )
    if not loaded.loras:
        raise UnsupportedAdapter(f"adapter {name} has no LoRA modules")
    return AdapterFactors(loaded)


@contextmanager
def open_factors(
    folders: Sequence[tuple[Path, str | None]],
) -> Iterator[list[AdapterFactors]]:
    """Load several folders, closing every file afterwards (also when one is refused)."""
    opened: list[AdapterFactors] = []
    try:
        for folder, label in folders:
            opened.append(load_factors(folder, label=label))
        yield opened
    finally:
        for f in opened:
            f.close()


def check_shapes(sources: Sequence[FactorSource]) -> None:
    """Every module adapted by several sources has one (d_in, d_out) among them."""
    seen: dict[str, tuple[str, ModuleShape]] = {}
    for src in sources:
        for module, shape in src.shapes.items():
            if module not in seen:
                seen[module] = (src.label, shape)
                continue
            label, first = seen[module]
            if (first.in_features, first.out_features) != (shape.in_features, shape.out_features):
                raise ShapeMismatch(
                    f"{module} is {first.out_features}x{first.in_features} in {label} but"
                    f" {shape.out_features}x{shape.in_features} in {src.label}: these adapters"
                    " were not trained on the same architecture"
                )


def inner(x: ModuleFactors, y: ModuleFactors) -> float:
    """``<delta_x, delta_y>`` (Frobenius) from the factors, in O(r_x r_y (d_in + d_out))."""
    g = (x.b.T @ y.b) * (x.a @ y.a.T)
    return float(g.sum(dtype=torch.float64)) * x.scale * y.scale


def norm_sq(x: ModuleFactors) -> float:
    return max(inner(x, x), 0.0)


@dataclass(frozen=True)
class CoreSVD:
    """``scale * B @ A = U diag(s) Vh`` with U = Qb @ u (d_out x k), Vh = vh @ Qa.T (k x d_in)."""

    qb: torch.Tensor
    u: torch.Tensor
    s: torch.Tensor
    vh: torch.Tensor
    qa: torch.Tensor

    def truncate(self, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Factors (A', B') of the best rank-``rank`` approximation (Eckart-Young), with the
        singular values split evenly between them so neither factor dominates."""
        t = min(rank, int(self.s.numel()))
        root = self.s[:t].sqrt()
        new_b = self.qb @ (self.u[:, :t] * root)
        new_a = (root[:, None] * self.vh[:t]) @ self.qa.T
        return new_a, new_b

    def relative_error(self, rank: int) -> float:
        """``||delta - delta_rank||_F / ||delta||_F`` (0 for a zero delta)."""
        energy = self.s.pow(2)
        total = float(energy.sum())
        if total <= 0:
            return 0.0
        return math.sqrt(max(float(energy[rank:].sum()), 0.0) / total)


def core_svd(a: torch.Tensor, b: torch.Tensor, scale: float = 1.0) -> CoreSVD:
    """The thin SVD of ``scale * b @ a`` from QR factors (fp64: the core's conditioning is
    the delta's); never forms the d_out x d_in product."""
    qb, rb = torch.linalg.qr(b.double())
    qa, ra = torch.linalg.qr(a.double().T)
    u, s, vh = torch.linalg.svd((rb @ ra.T) * scale, full_matrices=False)
    return CoreSVD(qb, u, s, vh, qa)


def effective_rank(s: torch.Tensor, energy: float) -> int:
    """The fewest singular values that hold ``energy`` of ``sum(s**2)`` (at least 1)."""
    sq = s.double().pow(2)
    total = float(sq.sum())
    if total <= 0:
        return 1
    cum = torch.cumsum(sq, 0) / total
    # A tiny tolerance keeps energy=1.0 from demanding the rounding noise of the tail.
    k = int(torch.searchsorted(cum, torch.tensor(energy - 1e-12, dtype=cum.dtype))) + 1
    return max(1, min(k, int(s.numel())))
