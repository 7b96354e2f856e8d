"""Streaming a merge plan through the pipeline: the compute side of ``merge_adapters``.

Per chunk of rows: base rows in their stored dtype (mapped from the page cache on the CPU,
read into page-locked buffers for CUDA) are copied into an fp32 scratch buffer on the
device, the adapters' change is applied (``delta.merge_rows``), and the result is cast into
a reusable host buffer that the writer thread hashes and writes at its offset.

On CUDA nothing waits for the device in this thread: each chunk's host-to-device copy runs
on a copy stream (page-locked source, so truly asynchronous), the arithmetic on the compute
stream once that copy's event fires, and the cast result comes back by an asynchronous copy
into a page-locked buffer whose event the writer waits on. So the reader's disk reads, the
copies both ways, the arithmetic and the writer's hashing and writes all overlap.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from registry.formats.safetensors import DTYPE_SIZES
from registry.merge.adapters import LoadedAdapter
from registry.merge.compose import prepare_tensor
from registry.merge.delta import PreparedTensor, Scratch, dora_column_factor, merge_rows
from registry.merge.output import ShardLayout, TensorJob
from registry.merge.pipeline import RING_SLOTS, Chunk, Pipeline, Written
from registry.merge.plan import BaseLayout
from registry.merge.tensor_io import TORCH_DTYPES, BufferRing, OutputFile, TensorFile, rows_of
from registry.merge.verify import to_cpu64

_PROGRESS_EVERY_S = 0.5
# CPU merges read base rows through private mappings (one copy fewer than pread); tests
# switch this off to cover the buffered path CUDA merges use.
MAP_READS = True


class MergeCancelled(Exception):
    """``should_cancel`` returned True; the partial output has been removed."""


@dataclass(frozen=True)
class MergeProgress:
    """Where a running merge is: bytes of output done out of the total, and the current shard."""

    bytes_done: int
    bytes_total: int
    shard: str
    shards_done: int
    shards_total: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 1.0

    @property
    def rate(self) -> float:
        """Output bytes per second so far."""
        return self.bytes_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        return (self.bytes_total - self.bytes_done) / rate if rate > 0 else None


@dataclass(frozen=True)
class StreamSpec:
    """Everything ``stream_merge`` needs: the plan laid out, and where and how to run it."""

    base: BaseLayout
    adapters: list[LoadedAdapter]
    jobs: list[TensorJob]
    layouts: list[ShardLayout]
    out_dir: Path
    device: torch.device
    method: str
    svd_rank: int | None
    sample: set[str]
    # Flush every output shard to disk before returning (the store adopts the files).
    durable: bool = False


@dataclass(frozen=True)
class Streamed:
    """What ``stream_merge`` did: bytes computed, the sampled tensors' prepared factors (fp64,
    CPU) for verification, and each output shard's sha256 as written."""

    computed: int
    kept: list[PreparedTensor]
    sha256: dict[str, str]


def stream_merge(
    spec: StreamSpec,
    *,
    progress: Callable[[MergeProgress], None] | None,
    should_cancel: Callable[[], bool] | None,
    t_start: float,
) -> Streamed:
    """Write every output shard into ``spec.out_dir``; raises MergeCancelled, or the first
    error of any thread."""
    dev = spec.device
    base_files = {s: TensorFile(spec.base.folder / s) for s in spec.base.shards}
    adapter_files = [TensorFile(a.weights_path) for a in spec.adapters]
    outputs: dict[str, OutputFile] = {}
    shard_sizes = {s.name: s.data_size for s in spec.layouts}
    pipe: Pipeline | None = None
    last_report = [0.0]

    def tick(force: bool = False) -> None:
        if should_cancel is not None and should_cancel():
            raise MergeCancelled("merge cancelled")
        now = time.perf_counter()
        if progress is None or pipe is None:
            return
        if not force and now - last_report[0] < _PROGRESS_EVERY_S:
            return
        last_report[0] = now
        done = pipe.progress()
        progress(
            MergeProgress(
                bytes_done=sum(done.values()),
                bytes_total=sum(shard_sizes.values()),
                shard=pipe.writing_shard,
                shards_done=sum(1 for s, n in done.items() if n >= shard_sizes[s]),
                shards_total=len(shard_sizes),
                elapsed_s=now - t_start,
            )
        )

    pin = dev.type == "cuda"
    max_in = max((j.chunk_bytes(out=False) for j in spec.jobs), default=0)
    max_out = max((j.chunk_bytes(out=True) for j in spec.jobs), default=0)
    try:
        with torch_settings(dev):
            for layout in spec.layouts:
                path = spec.out_dir / layout.name
                outputs[layout.name] = OutputFile.create(path, layout.header, layout.data_size)
            pipe = Pipeline(
                jobs=spec.jobs,
                layouts=spec.layouts,
                durable=spec.durable,
                base_files=base_files,
                adapter_files=adapter_files,
                outputs=outputs,
                # CPU: map rows straight from the page cache; CUDA: page-locked copies for DMA.
                read_ring=None
                if MAP_READS and not pin
                else BufferRing(RING_SLOTS, max_in, pin=pin),
            )
            out_ring = BufferRing(RING_SLOTS, max_out, pin=pin)
            scratch = Scratch(dev)
            device_io = DeviceIO(dev) if pin else None
            pipe.start()
            computed = 0
            prep: PreparedTensor | None = None
            kept: list[PreparedTensor] = []
            for chunk in pipe.chunks(tick):
                plan = chunk.job.plan
                if chunk.factors is not None:
                    prep = _prepare(chunk, spec, base_files, adapter_files)
                    if plan.name in spec.sample:
                        kept.append(to_cpu64(prep))
                assert prep is not None
                if device_io is not None:
                    data, ready = device_io.compute(chunk, prep, scratch, out_ring)
                else:
                    data, ready = _compute(chunk, prep, scratch, out_ring, dev), None
                chunk.release()
                offset = chunk.job.out_offset(chunk.start)
                pipe.write(Written(plan.shard, offset, data, ready), tick)
                computed += data.numel() * data.element_size()
            pipe.finish(tick)
            tick(force=True)
            return Streamed(computed, kept, dict(pipe.sha256))
    finally:
        if pipe is not None:
            pipe.close()
        for f in [*base_files.values(), *adapter_files]:
            f.close()
        for o in outputs.values():
            o.close()


def _compute(
    chunk: Chunk, prep: PreparedTensor, scratch: Scratch, out_ring: BufferRing, dev: torch.device
) -> torch.Tensor:
    """One chunk merged and cast into the next host buffer of ``out_ring``."""
    stored = chunk.raw.to(dev, non_blocking=True)
    reps = {i: r.to(dev) for i, r in chunk.replacements.items()}
    out = merge_rows(prep, stored, chunk.start, chunk.stop, reps, scratch)
    out_dtype = prep.plan.out_dtype
    data = out_ring.take(out.numel() * DTYPE_SIZES[out_dtype])
    data_t = data.view(TORCH_DTYPES[out_dtype]).view(out.shape)
    data_t.copy_(out)
    return data_t


class DeviceIO:
    """A CUDA merge's copies, off the host thread's critical path (see the module docstring).

    Ring buffers are reused in turn, so a page-locked read buffer must not be refilled while
    its host-to-device copy may still run: before chunk ``k`` is issued, the copy of chunk
    ``k - 1`` is waited for, which leaves the reader (at most ``RING_SLOTS - 2`` chunks
    ahead) a free buffer. Output buffers are safe by the writer's order: it waits for each
    chunk's event before touching its bytes, and a buffer comes round again only after the
    writer is done with it.
    """

    def __init__(self, dev: torch.device) -> None:
        self.dev = dev
        self.copy_stream = torch.cuda.Stream(dev)
        self.compute_stream = torch.cuda.current_stream(dev)
        self._last_upload: torch.cuda.Event | None = None

    def upload(self, host: torch.Tensor) -> torch.Tensor:
        """``host`` (page-locked) on the device, ordered before later compute-stream work."""
        if self._last_upload is not None:
            self._last_upload.synchronize()
        with torch.cuda.stream(self.copy_stream):
            on_dev = host.to(self.dev, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.copy_stream)
        self.compute_stream.wait_event(done)
        # The caching allocator must not hand this memory out again before compute is done.
        on_dev.record_stream(self.compute_stream)
        self._last_upload = done
        return on_dev

    def compute(
        self, chunk: Chunk, prep: PreparedTensor, scratch: Scratch, out_ring: BufferRing
    ) -> tuple[torch.Tensor, Callable[[], object]]:
        """Issue one chunk; its host bytes are valid once the returned callable returns."""
        stored = self.upload(chunk.raw)
        reps = {i: self.upload(r.pin_memory()) for i, r in chunk.replacements.items()}
        out = merge_rows(prep, stored, chunk.start, chunk.stop, reps, scratch)
        out_dtype = prep.plan.out_dtype
        cast = out.to(TORCH_DTYPES[out_dtype])
        data = out_ring.take(out.numel() * DTYPE_SIZES[out_dtype])
        data_t = data.view(TORCH_DTYPES[out_dtype]).view(out.shape)
        data_t.copy_(cast, non_blocking=True)
        done = torch.cuda.Event()
        done.record(self.compute_stream)
        return data_t, done.synchronize


def _prepare(
    chunk: Chunk,
    spec: StreamSpec,
    base_files: dict[str, TensorFile],
    adapter_files: list[TensorFile],
) -> PreparedTensor:
    """A tensor's factors on the device, composed; DoRA on (in, out) layouts pre-scanned."""
    plan, dev = chunk.job.plan, spec.device
    assert chunk.factors is not None

    def on_dev(t: torch.Tensor) -> torch.Tensor:
        return t.to(dev, torch.float32)

    factors = {
        i: (on_dev(a), on_dev(b), None if m is None else on_dev(m))
        for i, (a, b, m) in chunk.factors.items()
    }
    prep = prepare_tensor(plan, factors, method=spec.method, svd_rank=spec.svd_rank)
    for term in prep.terms:
        if term.magnitude is None or not plan.transposed:
            continue
        # DoRA on an (in, out) layout: the norms need every row first.
        if term.replacement is not None:
            c = plan.contributions[term.replacement]
            assert c.replacement is not None
            src, key = adapter_files[c.adapter], c.replacement.key
        else:
            src, key = base_files[plan.shard], plan.read_name

        def read(start: int, stop: int, src: TensorFile = src, key: str = key) -> torch.Tensor:
            return on_dev(src.read_rows(key, start, stop))

        term.column_factor = dora_column_factor(
            read, term.low_rank, term.magnitude, rows_of(plan.info), chunk.job.chunk_rows
        )
    return prep


@contextmanager
def torch_settings(dev: torch.device, *, cpu_threads: int | None = None) -> Iterator[None]:
    """Process-wide torch settings for the merge, restored when it ends.

    CPU: leave two cores to the reader, writer and copier threads; the per-chunk arithmetic
    is memory-bound, and more compute threads than free cores make torch's pool wait on busy
    cores (measured 3-6x slower on a 2-core machine); ``cpu_threads`` overrides that.
    CUDA: no TF32 matmuls, whose 10-bit mantissa would make the deltas inexact.
    """
    if dev.type == "cuda":
        matmul = torch.backends.cuda.matmul
        # torch >= 2.9 has fp32_precision and refuses mixing it with the legacy allow_tf32.
        exact: object
        if hasattr(matmul, "fp32_precision"):
            knob, exact = "fp32_precision", "ieee"
        else:
            knob, exact = "allow_tf32", False
        before = getattr(matmul, knob)
        setattr(matmul, knob, exact)
        try:
            yield
        finally:
            setattr(matmul, knob, before)
        return
    before = torch.get_num_threads()
    threads = cpu_threads or len(os.sched_getaffinity(0)) - 2
    torch.set_num_threads(max(1, min(before, threads)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
