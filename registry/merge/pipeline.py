"""Overlapping I/O with compute: a reader runs ahead, a writer runs behind, a copier runs beside.

- the reader fetches the next chunks of changed tensors (mapped from the page cache for CPU
  merges, read into page-locked buffers for CUDA) and, on a tensor's first chunk, its
  adapter factors, into a queue two deep;
- the caller's thread computes, and hands finished chunks to the writer's queue, two deep;
- the writer ``pwrite``s each chunk at its offset, so order does not matter;
- the copier copies untouched byte runs file to file in the kernel, in parallel.

So at most a handful of chunks are in memory at once, whatever the model's size. Every
thread stops at the first error or at ``stop``; ``Pipeline.close`` joins them all.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from registry.merge.output import CopyOp, TensorJob
from registry.merge.tensor_io import (
    BufferRing,
    MappedRows,
    OutputFile,
    TensorFile,
    copy_range,
    tensor_bytes,
    write_at,
)

_POLL_S = 0.2
DEPTH = 2
# Chunks alive at once per ring: DEPTH queued, one being produced, one being consumed.
RING_SLOTS = DEPTH + 3


class _Stopped(Exception):
    """Raised inside a worker thread to unwind once the pipeline is stopping."""


@dataclass
class Chunk:
    job: TensorJob
    start: int
    stop: int
    raw: torch.Tensor
    replacements: dict[int, torch.Tensor]
    # On a tensor's first chunk: per contribution (A, B, DoRA magnitude) as stored.
    factors: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] | None
    mapped: MappedRows | None = None

    def release(self) -> None:
        """Drop the chunk's base rows (unmapping them if mapped)."""
        self.raw = torch.empty(0)
        if self.mapped is not None:
            self.mapped.close()


class Pipeline:
    def __init__(
        self,
        *,
        jobs: list[TensorJob],
        copies: list[CopyOp],
        base_files: dict[str, TensorFile],
        adapter_files: list[TensorFile],
        outputs: dict[str, OutputFile],
        read_ring: BufferRing | None,
    ) -> None:
        self.jobs, self.copies = jobs, copies
        self.base_files, self.adapter_files, self.outputs = base_files, adapter_files, outputs
        self.read_ring = read_ring
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._read_q: queue.Queue[Chunk | None] = queue.Queue(maxsize=DEPTH)
        self._write_q: queue.Queue[tuple[str, int, torch.Tensor] | None] = queue.Queue(DEPTH)
        self.bytes_done: dict[str, int] = dict.fromkeys(outputs, 0)
        self.copy_shard = ""
        self.read_wait_s = 0.0
        self._threads = [
            threading.Thread(target=self._guard, args=(self._read,), name="merge-reader"),
            threading.Thread(target=self._guard, args=(self._write,), name="merge-writer"),
            threading.Thread(target=self._guard, args=(self._copy,), name="merge-copier"),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def chunks(self, tick: Callable[[], None]) -> Iterator[Chunk]:
        """Chunks in job order; ``tick`` runs between them and while waiting (it may raise)."""
        while True:
            tick()
            self._raise_if_failed()
            t0 = time.perf_counter()
            try:
                item = self._read_q.get(timeout=_POLL_S)
            except queue.Empty:
                self.read_wait_s += time.perf_counter() - t0
                continue
            self.read_wait_s += time.perf_counter() - t0
            if item is None:
                return
            yield item

    def write(self, shard: str, offset: int, data: torch.Tensor, tick: Callable[[], None]) -> None:
        self._put(self._write_q, (shard, offset, data), tick)

    def finish(self, tick: Callable[[], None]) -> None:
        """Wait until every chunk is written and every copy done."""
        self._put(self._write_q, None, tick)
        for t in self._threads:
            while t.is_alive():
                tick()
                self._raise_if_failed()
                t.join(timeout=_POLL_S)
        self._raise_if_failed()

    def close(self) -> None:
        self.stop.set()
        for t in self._threads:
            if t.ident is not None:
                t.join()

    def progress(self) -> dict[str, int]:
        """Output bytes written so far, per shard."""
        with self._lock:
            return dict(self.bytes_done)

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def _put(self, q: queue.Queue[Any], item: object, tick: Callable[[], None] | None) -> None:
        while True:
            if tick is not None:
                tick()
                self._raise_if_failed()
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            with self._lock:
                if self.error is None:
                    self.error = exc
            self.stop.set()

    def _add(self, shard: str, n: int) -> None:
        with self._lock:
            self.bytes_done[shard] += n

    def _read(self) -> None:
        for job in self.jobs:
            plan = job.plan
            base = self.base_files[plan.shard]
            for k, (start, stop) in enumerate(job.chunks()):
                factors = None
                if k == 0:
                    factors = {}
                    for i, c in enumerate(plan.contributions):
                        if c.lora is not None:
                            f = self.adapter_files[c.adapter]
                            mag = f.read(c.lora.magnitude_key) if c.lora.magnitude_key else None
                            factors[i] = (f.read(c.lora.a_key), f.read(c.lora.b_key), mag)
                reps = {
                    i: self.adapter_files[c.adapter].read_rows(c.replacement.key, start, stop)
                    for i, c in enumerate(plan.contributions)
                    if c.replacement is not None
                }
                mapped = None
                if self.read_ring is None:
                    mapped = base.map_rows(plan.read_name, start, stop)
                    raw = mapped.tensor
                else:
                    raw = base.read_rows(plan.read_name, start, stop, into=self.read_ring)
                chunk = Chunk(job, start, stop, raw, reps, factors, mapped)
                self._put(self._read_q, chunk, None)
        self._put(self._read_q, None, None)

    def _write(self) -> None:
        while True:
            try:
                item = self._write_q.get(timeout=_POLL_S)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            if item is None:
                return
            shard, offset, data = item
            out = self.outputs[shard]
            view = tensor_bytes(data)
            write_at(out.fd, offset, view, path=out.path)
            self._add(shard, len(view))

    def _copy(self) -> None:
        for op in self.copies:
            self.copy_shard = op.shard
            out = self.outputs[op.shard]

            def on_slice(n: int, shard: str = op.shard) -> None:
                self._add(shard, n)
                if self.stop.is_set():
                    raise _Stopped

            copy_range(
                self.base_files[op.shard].fd,
                op.src_off,
                out.fd,
                op.dst_off,
                op.length,
                path=out.path,
                on_slice=on_slice,
            )
