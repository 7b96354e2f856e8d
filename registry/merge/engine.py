"""Merging LoRA adapters into a base model's safetensors, streaming, with PEFT's semantics.

``merge_adapters`` reads the base shard by shard and tensor by tensor (in chunks of rows),
applies every adapter's change in fp32 on the chosen device, casts back to each tensor's
dtype, and writes shards with the base's file names, tensor order, index and config files.
Bytes no adapter touches are copied file to file by the kernel. Memory stays at a few
chunks (tens of MiB) whatever the model size; reading, computing, copying and writing
overlap (``pipeline.py``). Output goes to a hidden sibling folder that is renamed into
place only after the merge has been verified, so ``out_dir`` either holds a complete merged
model or does not exist.

The math lives in ``delta.py`` (per-chunk formulas), ``compose.py`` (sum / linear / cat / svd and
the interference report) and ``verify.py`` (random-probe checks); what is refused, and why,
in ``adapters.py`` and ``plan.py``.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from registry.errors import AlreadyExists, ChecksumMismatch, InvalidInput
from registry.merge.adapters import AdapterInput, LoadedAdapter, Replacement, load_adapters
from registry.merge.delta import PreparedTensor
from registry.merge.layer_types import layer_types
from registry.merge.methods import check_options
from registry.merge.output import (
    copy_side_files,
    layout_shards,
    write_index,
)
from registry.merge.plan import BaseLayout, build_plan, read_base, untied
from registry.merge.stream import MergeProgress, StreamSpec, stream_merge, torch_settings
from registry.merge.tensor_io import (
    TORCH_DTYPES,
    TensorFile,
    disk_full,
    dtype_name,
    rows_of,
)
from registry.merge.verify import Verification, check_tensor, choose_sample, summarise

# CPU: 4 MiB of fp32 keeps a chunk's scratch in cache through convert, addmm and cast
# (measured 25% less CPU time than 16 MiB on a 2-core machine, same bytes).
_CHUNK_BYTES = {"cpu": 4 * 2**20, "cuda": 128 * 2**20}
_PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True)
class MergeResult:
    """A finished merge: what was written where, how it was computed, and how it checked out."""

    out_dir: Path
    method: str
    device: str
    dtype: str | None
    adapters: list[str]
    weights: list[float]
    files: list[str]
    shards: list[str]
    tensors_total: int
    tensors_changed: int
    lora_modules: int
    bytes_total: int
    bytes_computed: int
    bytes_copied: int
    elapsed_s: float
    verification: Verification
    timings: dict[str, float] = field(default_factory=dict)
    # With ``durable``: each shard's sha256, from the bytes as they were written.
    shard_sha256: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, for a job's result."""
        doc = dict(self.__dict__)
        doc.pop("shard_sha256")
        doc["out_dir"] = str(self.out_dir)
        doc["verification"] = self.verification.to_dict()
        return doc


def resolve_device(device: str) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; asking for absent CUDA is refused."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInput(f"device {device!r} requested but no CUDA device is available here")
    if not (device == "cpu" or device.startswith("cuda")):
        raise InvalidInput(f"device {device!r} is not supported; use auto, cpu or cuda")
    return torch.device(device)


def merge_adapters(
    base_dir: Path,
    adapters: Sequence[AdapterInput],
    out_dir: Path,
    *,
    method: str = "sum",
    weights: Sequence[float] | None = None,
    svd_rank: int | None = None,
    device: str = "auto",
    dtype: str | torch.dtype | None = None,
    progress: Callable[[MergeProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    verify_modules: int = 8,
    chunk_bytes: int | None = None,
    durable: bool = False,
) -> MergeResult:
    """Merge ``adapters`` (composed by ``method`` with ``weights``) into the base in ``base_dir``.

    Writes a complete model folder at ``out_dir`` (which must not exist): the base's shards
    with every adapted tensor replaced, its index and its config / tokenizer files. A single
    adapter with weight 1 gives exactly what PEFT's ``merge_and_unload`` computes; see
    ``compose.py`` for several adapters. ``dtype`` (e.g. ``"bfloat16"``) casts every float
    tensor of the output; by default each keeps the base's dtype.

    Raises InvalidInput / InvalidAdapter (nothing written) for what cannot be merged exactly,
    AlreadyExists if ``out_dir`` exists, StorageUnavailable if the disk fills up,
    ChecksumMismatch if the probes disagree beyond rounding, MergeCancelled when
    ``should_cancel()`` turns True. On any failure no output folder is left behind (a
    process killed outright leaves a hidden ``.<out_dir name>.partial-*`` sibling to delete).
    ``progress`` and ``should_cancel`` are called from the calling thread, about twice a
    second. ``durable`` hashes every shard as it is written (``MergeResult.shard_sha256``) and
    flushes it to disk before returning, for a caller that moves the files into a blob store
    as they are.
    """
    t_start = time.perf_counter()
    base_dir, out_dir = Path(base_dir), Path(out_dir)
    dev = resolve_device(device)
    out_dtype = dtype_name(dtype) if dtype is not None else None
    loaded = load_adapters(adapters)
    weight_list = check_options(len(loaded), method, weights, svd_rank)
    base = read_base(base_dir)
    plans = build_plan(
        base, loaded, weight_list, method, out_dtype, same_as_base=_identical_copy(base)
    )
    elems = (chunk_bytes or _CHUNK_BYTES[dev.type]) // 4
    layouts, copies, jobs = layout_shards(base, plans, chunk_elems=max(1, elems))
    if out_dir.exists():
        raise AlreadyExists(f"merge output folder {out_dir} already exists")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    bytes_total = sum(len(s.header) + s.data_size for s in layouts)
    if shutil.disk_usage(out_dir.parent).free < bytes_total:
        raise disk_full(out_dir / layouts[0].name, bytes_total)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    sample = choose_sample((j.plan for j in jobs), verify_modules)
    # The verification's second opinion on layer types: a table for known architectures
    # (instant), else transformers building the model on the meta device in a child
    # process (seconds), so it runs beside the merge instead of after it.
    kinds = _Background(layer_types, base.architecture, sample) if sample else None
    t_plan = time.perf_counter()
    try:
        spec = StreamSpec(
            base=base,
            adapters=loaded,
            jobs=jobs,
            layouts=layouts,
            out_dir=tmp,
            device=dev,
            method=method,
            svd_rank=svd_rank,
            sample=set(sample),
            durable=durable,
        )
        streamed = stream_merge(
            spec, progress=progress, should_cancel=should_cancel, t_start=t_start
        )
        computed, checks_prep = streamed.computed, streamed.kept
        t_merge = time.perf_counter()
        # Small fp64 products: one thread beats a pool's wake-ups.
        with torch_settings(torch.device("cpu"), cpu_threads=1):
            types = kinds.result() if kinds is not None else {}
            verification = _verify(base, tmp, checks_prep, min(elems, 4 * 2**20), types)
        if not verification.passed:
            raise ChecksumMismatch(
                f"merge verification failed: {verification.worst_module} differs from the"
                f" adapters' delta by {verification.max_error_ratio:.1f}x what rounding to the"
                " output dtype explains; the output was discarded"
            )
        t_verify = time.perf_counter()
        side = copy_side_files(base_dir, tmp, out_dtype, untie=untied(plans))
        index = write_index(base, tmp, layouts, plans)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    t_end = time.perf_counter()
    shards = [s.name for s in layouts]
    return MergeResult(
        out_dir=out_dir,
        method=method,
        device=str(dev),
        dtype=out_dtype,
        adapters=[a.label for a in loaded],
        weights=weight_list,
        files=sorted([*shards, *side, *([index] if index else [])]),
        shards=shards,
        tensors_total=len(base.tensor_shard),
        tensors_changed=sum(1 for p in plans.values() if p.contributions),
        lora_modules=sum(len(a.loras) for a in loaded),
        bytes_total=bytes_total,
        bytes_computed=computed,
        bytes_copied=sum(c.length for c in copies),
        elapsed_s=t_end - t_start,
        verification=verification,
        timings={
            "plan_s": t_plan - t_start,
            "merge_s": t_merge - t_plan,
            "verify_s": t_verify - t_merge,
            "finish_s": t_end - t_verify,
        },
        shard_sha256=streamed.sha256,
    )


class _Background:
    """``fn(*args)`` in a daemon thread; ``result()`` waits for it (and re-raises)."""

    def __init__(self, fn: Callable[..., dict[str, str]], *args: object) -> None:
        self._value: dict[str, str] = {}
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn(*args)
            except BaseException as exc:  # handed to the caller of result()
                self._error = exc

        self._thread = threading.Thread(target=run, name="merge-layer-types", daemon=True)
        self._thread.start()

    def result(self) -> dict[str, str]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _verify(
    base: BaseLayout,
    tmp: Path,
    preps: list[PreparedTensor],
    chunk_elems: int,
    kinds: dict[str, str],
) -> Verification:
    checks = []
    outs: dict[str, TensorFile] = {}
    bases: dict[str, TensorFile] = {}
    try:
        for prep in preps:
            shard = prep.plan.shard
            if shard not in outs:
                outs[shard] = TensorFile(tmp / shard)
                bases[shard] = TensorFile(base.folder / shard)
            cols = prep.plan.info.shape[1]
            checks.append(
                check_tensor(
                    prep,
                    bases[shard],
                    outs[shard],
                    chunk_rows=max(1, chunk_elems // cols),
                    kind=kinds.get(prep.plan.name),
                )
            )
    finally:
        for f in [*outs.values(), *bases.values()]:
            f.close()
    return summarise(checks)


def _identical_copy(base: BaseLayout) -> Callable[[str, LoadedAdapter, Replacement], bool]:
    """Whether an adapter's saved base_layer copy holds the base tensor's values (chunked)."""

    def same(name: str, adapter: LoadedAdapter, rep: Replacement) -> bool:
        info = base.info(name)
        dtype = TORCH_DTYPES[info.dtype]
        step = max(1, (8 * 2**20) // max(1, info.numel // max(1, rows_of(info))))
        with (
            TensorFile(base.folder / base.tensor_shard[name]) as bf,
            TensorFile(adapter.weights_path) as af,
        ):
            for start in range(0, rows_of(info), step):
                stop = min(rows_of(info), start + step)
                ours = af.read_rows(rep.key, start, stop).to(dtype)
                if not torch.equal(ours, bf.read_rows(name, start, stop)):
                    return False
        return True

    return same
