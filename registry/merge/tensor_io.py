"""Safetensors files read and written by byte ranges, never mmapped and never whole.

Reading goes through ``pread`` into buffers we own rather than ``safe_open``: safe_open
maps the file, and every page it touches counts towards the process's resident set until
the mapping goes, so streaming a 140 GB model through it shows up as 140 GB of RSS.
Writing goes through ``pwrite`` at offsets computed from the header, so chunks may land in
any order, and untouched byte ranges are copied by the kernel (``copy_file_range``)
without passing through this process at all.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from registry.errors import InvalidInput, StorageUnavailable
from registry.formats.safetensors import (
    DTYPE_SIZES,
    SafetensorsHeader,
    TensorInfo,
    read_header_file,
)
from registry.merge.adapters import FLOAT_DTYPES

TORCH_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
SAFETENSORS_NAMES: dict[torch.dtype, str] = {v: k for k, v in TORCH_DTYPES.items()}

# Unit roundoff of each float format: the relative error of one rounding to it.
UNIT_ROUNDOFF: dict[str, float] = {
    "F64": 2.0**-53,
    "F32": 2.0**-24,
    "F16": 2.0**-11,
    "BF16": 2.0**-8,
}

_COPY_SLICE = 64 * 1024 * 1024
# Mapped pages count as resident while mapped: hash in slices small enough not to matter.
_HASH_SLICE = 8 * 1024 * 1024


def dtype_name(dtype: str | torch.dtype) -> str:
    """Normalise ``torch.bfloat16`` / ``"bfloat16"`` / ``"bf16"`` / ``"BF16"`` to ``"BF16"``."""
    if isinstance(dtype, torch.dtype):
        if dtype not in SAFETENSORS_NAMES or SAFETENSORS_NAMES[dtype] not in FLOAT_DTYPES:
            raise InvalidInput(f"output dtype {dtype} is not a float dtype")
        return SAFETENSORS_NAMES[dtype]
    aliases = {
        "float32": "F32", "fp32": "F32", "f32": "F32",
        "float16": "F16", "fp16": "F16", "f16": "F16", "half": "F16",
        "bfloat16": "BF16", "bf16": "BF16",
    }  # fmt: skip
    name = aliases.get(dtype.lower())
    if name is None:
        raise InvalidInput(
            f"output dtype {dtype!r} is not supported; use float32, float16 or bfloat16"
        )
    return name


def rows_of(info: TensorInfo) -> int:
    """Chunking runs along the first axis; a scalar is one row."""
    return info.shape[0] if info.shape else 1


def row_bytes(info: TensorInfo) -> int:
    per_row = math.prod(info.shape[1:]) if info.shape else 1
    return per_row * DTYPE_SIZES[info.dtype]


class TensorFile:
    """A local safetensors file whose header is parsed once and whose tensors are read by rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: SafetensorsHeader = read_header_file(path)
        self._fd = os.open(path, os.O_RDONLY)

    @property
    def fd(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> TensorFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self, name: str) -> TensorInfo:
        return self.header.tensors[name]

    def read_rows(
        self, name: str, start: int, stop: int, *, into: BufferRing | None = None
    ) -> torch.Tensor:
        """Rows ``[start, stop)`` of a tensor in its stored dtype, on the CPU: a new tensor,
        or a view of the next buffer of ``into``."""
        info = self.header.tensors[name]
        rb = row_bytes(info)
        offset = self.header.data_offset + info.start + start * rb
        length = (stop - start) * rb
        buf = into.take(length) if into is not None else None
        raw = read_exact(self._fd, offset, length, name=f"{self.path}:{name}", into=buf)
        shape = ((stop - start), *info.shape[1:]) if info.shape else ()
        return raw.view(TORCH_DTYPES[info.dtype]).reshape(shape)

    def map_rows(self, name: str, start: int, stop: int) -> MappedRows:
        """Rows ``[start, stop)`` mapped from the page cache without a copy (CPU merges).

        Only this chunk is mapped, and only until ``MappedRows.close``, so resident memory
        stays bounded however large the file.
        """
        info = self.header.tensors[name]
        rb = row_bytes(info)
        offset = self.header.data_offset + info.start + start * rb
        if offset % DTYPE_SIZES[info.dtype]:
            # Data not aligned to its dtype (a writer that does not pad its header): copy.
            return MappedRows.of(self.read_rows(name, start, stop))
        mapped = MappedRows(self._fd, offset, (stop - start) * rb)
        shape = ((stop - start), *info.shape[1:]) if info.shape else ()
        mapped.tensor = mapped.tensor.view(TORCH_DTYPES[info.dtype]).reshape(shape)
        return mapped

    def read(self, name: str) -> torch.Tensor:
        """A whole tensor (used for adapter tensors, which are small)."""
        return self.read_rows(name, 0, rows_of(self.header.tensors[name]))


class MappedRows:
    """A private read mapping of one byte range, exposed as a tensor."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        aligned = offset - offset % mmap.ALLOCATIONGRANULARITY
        self._map: mmap.mmap | None = None
        if length == 0:
            self.tensor = torch.empty(0, dtype=torch.uint8)
            return
        # Private and writable only so torch accepts the buffer; nothing ever writes to it.
        self._map = mmap.mmap(
            fd,
            length + offset - aligned,
            flags=mmap.MAP_PRIVATE,
            prot=mmap.PROT_READ | mmap.PROT_WRITE,
            offset=aligned,
        )
        self.tensor = torch.frombuffer(self._map, dtype=torch.uint8)[offset - aligned :]

    @classmethod
    def of(cls, tensor: torch.Tensor) -> MappedRows:
        """A stand-in holding an ordinary tensor (nothing mapped)."""
        rows = cls.__new__(cls)
        rows._map, rows.tensor = None, tensor
        return rows

    def close(self) -> None:
        self.tensor = torch.empty(0, dtype=torch.uint8)
        if self._map is not None:
            # A view still alive somewhere keeps it mapped until that view is collected.
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None


class BufferRing:
    """A fixed set of byte buffers handed out in turn, so streaming chunks reuse memory.

    Safe while fewer than ``slots`` chunks taken from it are alive at once; the pipeline's
    queues bound that (queue depth + one being filled + one being consumed).
    """

    def __init__(self, slots: int, nbytes: int, *, pin: bool = False) -> None:
        self._bufs = [torch.empty(nbytes, dtype=torch.uint8, pin_memory=pin) for _ in range(slots)]
        self._next = 0

    def take(self, nbytes: int) -> torch.Tensor:
        buf = self._bufs[self._next]
        self._next = (self._next + 1) % len(self._bufs)
        if nbytes > buf.numel():
            raise ValueError(f"chunk of {nbytes} bytes exceeds the ring's {buf.numel()}")
        return buf[:nbytes]


def read_exact(
    fd: int, offset: int, length: int, *, name: str, into: torch.Tensor | None = None
) -> torch.Tensor:
    """``length`` bytes at ``offset`` into ``into`` (a uint8 tensor) or a fresh one."""
    buf = into if into is not None else torch.empty(length, dtype=torch.uint8)
    view = _buffer(buf) if length else memoryview(b"")
    done = 0
    while done < length:
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise InvalidInput(f"{name}: file ends early; the safetensors file is truncated")
        done += n
    return buf


def encode_header(
    entries: list[tuple[str, str, tuple[int, ...]]], metadata: dict[str, str]
) -> bytes:
    """A safetensors header for tensors laid out back to back in the order given.

    Padded with spaces to a multiple of 8 bytes, as the reference writer does, so tensor data
    stays aligned.
    """
    doc: dict[str, object] = {}
    if metadata:
        doc["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape in entries:
        size = math.prod(shape) * DTYPE_SIZES[dtype]
        doc[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    body = json.dumps(doc, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)
    return len(body).to_bytes(8, "little") + body


@dataclass
class OutputFile:
    """A safetensors file being written at known offsets; reserved up front so a full disk
    fails before any work rather than halfway through."""

    path: Path
    fd: int
    size: int

    @classmethod
    def create(cls, path: Path, header: bytes, data_size: int) -> OutputFile:
        # Readable too: the writer hashes copied runs back from the page cache.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        size = len(header) + data_size
        try:
            _reserve(fd, size, path)
            write_at(fd, 0, memoryview(header), path=path)
        except BaseException:
            os.close(fd)
            raise
        return cls(path=path, fd=fd, size=size)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _reserve(fd: int, size: int, path: Path) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise disk_full(path, size) from None
        # Filesystems without fallocate (some network mounts): fall back to a sparse size.
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        os.ftruncate(fd, size)


def disk_full(path: Path, size: int) -> StorageUnavailable:
    return StorageUnavailable(
        f"no space left on the device holding {path.parent} (needed {size / 1e9:.2f} GB for"
        f" {path.name}); free space or point the merge output elsewhere"
    )


def write_at(fd: int, offset: int, data: memoryview, *, path: Path) -> None:
    done = 0
    while done < len(data):
        try:
            done += os.pwrite(fd, data[done:], offset + done)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise disk_full(path, len(data)) from None
            raise


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of a contiguous CPU tensor, without a copy."""
    flat = t.contiguous().reshape(-1)
    return _buffer(flat.view(torch.uint8))


def copy_range(
    src_fd: int,
    src_off: int,
    dst_fd: int,
    dst_off: int,
    length: int,
    *,
    path: Path,
    on_slice: Callable[[int], None] | None = None,
) -> None:
    """Copy bytes file to file in the kernel, falling back to read/write where unsupported.

    ``on_slice(n)`` runs after every slice of at most 64 MiB (progress; it may raise to stop).
    """
    done = 0
    while done < length:
        n = min(_COPY_SLICE, length - done)
        try:
            got = os.copy_file_range(src_fd, dst_fd, n, src_off + done, dst_off + done)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise disk_full(path, length) from None
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            got = 0
        if got == 0:
            # No kernel copy here (or a short read): do this slice through user space.
            buf = read_exact(src_fd, src_off + done, n, name=str(path))
            write_at(dst_fd, dst_off + done, _buffer(buf), path=path)
            got = n
        done += got
        if on_slice is not None:
            on_slice(got)


def hash_range(
    fd: int,
    offset: int,
    length: int,
    digest: Any,
    on_slice: Callable[[int], None] | None = None,
) -> None:
    """Feed ``length`` bytes of a file at ``offset`` to ``digest`` (a hashlib object).

    Read through a shared read-only mapping, a slice of at most 8 MiB at a time, so the
    bytes go from the page cache into the hash without a copy, and resident memory stays
    at one slice. ``on_slice(n)`` runs after each slice (progress; it may raise to stop).
    """
    done = 0
    while done < length:
        n = min(_HASH_SLICE, length - done)
        start = offset + done
        aligned = start - start % mmap.ALLOCATIONGRANULARITY
        mapped = mmap.mmap(
            fd, n + start - aligned, flags=mmap.MAP_SHARED | _POPULATE,
            prot=mmap.PROT_READ, offset=aligned,
        )  # fmt: skip
        with mapped, memoryview(mapped) as view, view[start - aligned :] as part:
            digest.update(part)
        done += n
        if on_slice is not None:
            on_slice(n)


# Fault the slice in at once rather than page by page (Linux; elsewhere plain faults).
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def _buffer(t: torch.Tensor) -> memoryview:
    # numpy arrays implement the buffer protocol; typeshed does not say so for ndarray.
    return memoryview(t.numpy())  # type: ignore[arg-type]
