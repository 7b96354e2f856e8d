"""Overlapping I/O with compute: a reader runs ahead, a writer runs behind, a syncer after it.

- the reader fetches the next chunks of changed tensors (mapped from the page cache for CPU
  merges, read into page-locked buffers for CUDA) and, on a tensor's first chunk, its
  adapter factors, into a queue two deep;
- the caller's thread computes, and hands finished chunks to the writer's queue, two deep;
- the copier copies untouched byte runs file to file in the kernel, in parallel;
- the writer walks each output shard front to back: it writes computed chunks as they come
  (in file order) and feeds every byte of the shard, the header first, to its sha256 as it
  goes (an untouched run once the copier has copied it, from the output's pages in the page
  cache). So the output is hashed in the pass that writes it, never read back from disk,
  and the store can take the file as it is (``worker._store_output``);
- the syncer flushes each finished shard to disk while the writer goes on with the next,
  so the store's "durable before visible" costs no pass of its own.

Hashing and flushing serve a caller that stores the output (``durable``); a bare
``merge_adapters`` into a folder skips both.

So at most a handful of chunks are in memory at once, whatever the model's size. Every
thread stops at the first error or at ``stop``; ``Pipeline.close`` joins them all.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from registry.merge.output import CopyOp, ShardLayout, TensorJob
from registry.merge.tensor_io import (
    BufferRing,
    MappedRows,
    OutputFile,
    TensorFile,
    copy_range,
    hash_range,
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
class Written:
    """A computed chunk for the writer: its bytes go at ``offset`` of ``shard`` once
    ``ready`` (a device-to-host copy still in flight, on CUDA) has returned."""

    shard: str
    offset: int
    data: torch.Tensor
    ready: Callable[[], object] | None = None


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
        layouts: list[ShardLayout],
        base_files: dict[str, TensorFile],
        adapter_files: list[TensorFile],
        outputs: dict[str, OutputFile],
        read_ring: BufferRing | None,
        durable: bool = False,
    ) -> None:
        self.jobs, self.layouts = jobs, layouts
        self.base_files, self.adapter_files, self.outputs = base_files, adapter_files, outputs
        self.read_ring = read_ring
        self.durable = durable
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._read_q: queue.Queue[Chunk | None] = queue.Queue(maxsize=DEPTH)
        self._write_q: queue.Queue[Written | None] = queue.Queue(DEPTH)
        self._sync_q: queue.Queue[tuple[str, OutputFile] | None] = queue.Queue()
        self.bytes_done: dict[str, int] = dict.fromkeys(outputs, 0)
        # Per finished shard, when durable: the sha256 of its bytes as written (header too).
        self.sha256: dict[str, str] = {}
        self.writing_shard = layouts[0].name if layouts else ""
        self.read_wait_s = 0.0
        self._threads = [
            threading.Thread(target=self._guard, args=(self._read,), name="merge-reader"),
            threading.Thread(target=self._guard, args=(self._write,), name="merge-writer"),
            threading.Thread(target=self._guard, args=(self._copy,), name="merge-copier"),
            threading.Thread(target=self._guard, args=(self._sync,), name="merge-syncer"),
        ]
        # How many untouched runs (in layout order) the copier has finished.
        self._copies_done = 0
        self._copied = threading.Condition(self._lock)

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

    def write(self, item: Written, tick: Callable[[], None]) -> None:
        self._put(self._write_q, item, tick)

    def finish(self, tick: Callable[[], None]) -> None:
        """Wait until every shard is written (and, if durable, hashed and on disk)."""
        for t in self._threads:
            while t.is_alive():
                tick()
                self._raise_if_failed()
                t.join(timeout=_POLL_S)
        self._raise_if_failed()

    def close(self) -> None:
        self.stop.set()
        self._sync_q.put(None)
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

    def _next_written(self) -> Written:
        while True:
            try:
                item = self._write_q.get(timeout=_POLL_S)
            except queue.Empty:
                if self.stop.is_set():
                    raise _Stopped from None
                continue
            if item is None:  # the caller ran out of chunks before the layout did: a bug
                raise RuntimeError("merge pipeline: fewer computed chunks than the layout needs")
            return item

    def _write(self) -> None:
        """Every shard front to back: copies and computed chunks in file order (hashed, and
        handed to the syncer, when ``durable``)."""
        n_copies = 0
        for layout in self.layouts:
            self.writing_shard = name = layout.name
            out = self.outputs[name]
            digest = hashlib.sha256(layout.header) if self.durable else None
            for seg in layout.segments:
                if isinstance(seg, CopyOp):
                    n_copies += 1
                    self._hash_copied(seg, out, n_copies, digest)
                    continue
                for start, _ in seg.chunks():
                    item = self._next_written()
                    expected = seg.out_offset(start)
                    if item.shard != name or item.offset != expected:
                        raise RuntimeError(
                            f"merge pipeline: chunk for {item.shard}@{item.offset} arrived"
                            f" where {name}@{expected} was due"
                        )
                    if item.ready is not None:
                        item.ready()
                    view = tensor_bytes(item.data)
                    if digest is not None:
                        digest.update(view)
                    write_at(out.fd, item.offset, view, path=out.path)
                    self._add(name, len(view))
                    if self.stop.is_set():
                        raise _Stopped
            if digest is not None:
                self.sha256[name] = digest.hexdigest()
                self._sync_q.put((name, out))
        self._sync_q.put(None)

    def _hash_copied(self, op: CopyOp, out: OutputFile, nth: int, digest: Any | None) -> None:
        """An untouched run into the shard's hash, read back from the output's pages once the
        copier has copied it (the bytes in the file, whatever the base does meanwhile)."""
        with self._copied:
            while self._copies_done < nth:
                if self.stop.is_set():
                    raise _Stopped
                self._copied.wait(_POLL_S)

        def on_slice(n: int, shard: str = op.shard) -> None:
            self._add(shard, n)
            if self.stop.is_set():
                raise _Stopped

        if digest is None:
            on_slice(op.length)
            return
        hash_range(out.fd, op.dst_off, op.length, digest, on_slice)

    def _copy(self) -> None:
        """Every untouched run, file to file in the kernel, in layout order."""

        def on_slice(n: int) -> None:
            if self.stop.is_set():
                raise _Stopped

        for layout in self.layouts:
            out = self.outputs[layout.name]
            for op in layout.segments:
                if not isinstance(op, CopyOp):
                    continue
                src = self.base_files[op.shard].fd
                copy_range(
                    src, op.src_off, out.fd, op.dst_off, op.length, path=out.path,
                    on_slice=on_slice,
                )  # fmt: skip
                with self._copied:
                    self._copies_done += 1
                    self._copied.notify_all()

    def _sync(self) -> None:
        """Flush each finished shard to disk while the writer goes on with the next."""
        while True:
            item = self._sync_q.get()
            if item is None or self.stop.is_set():
                return
            os.fdatasync(item[1].fd)
