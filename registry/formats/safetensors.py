"""Safetensors header reader: 8-byte little-endian length, then a JSON header.

Works on anything that can read a byte range (a local file, a blob in storage), so the
catalog learns names, dtypes and shapes without ever loading tensor data.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from registry.errors import InvalidAdapter

DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip

DEFAULT_MAX_HEADER_BYTES = 16 * 1024 * 1024
# Bounds checked before anything is multiplied: a hostile header must cost milliseconds.
# Real checkpoints use at most 5-D tensors, dimensions far below 2**40 and, per file, a
# few thousand tensors (a 16 MB header holds ~150k entries at the smallest).
MAX_DIMS = 8
MAX_DIM = 2**40
MAX_TENSORS = 200_000
MAX_TENSOR_NAME = 1024  # real names stay under 300 characters; errors quote the name
# JSON integers longer than this are refused while parsing: offsets and dimensions fit in
# 15 digits, and converting thousands of huge digit strings is itself quadratic work.
_MAX_INT_DIGITS = 20

ReadRange = Callable[[int, int], bytes]
"""``read(offset, length) -> bytes``; may return fewer bytes only at end of file."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    # Byte offsets relative to the start of the data section (after the header).
    start: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    # Absolute offset of the data section: 8 + JSON header length.
    data_offset: int = 0

    def structure(self) -> list[tuple[str, str, tuple[int, ...]]]:
        return sorted((t.name, t.dtype, t.shape) for t in self.tensors.values())


def parse_header(
    read: ReadRange,
    file_size: int,
    *,
    name: str = "file",
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
) -> SafetensorsHeader:
    """Read and validate a safetensors header through ``read``.

    Raises InvalidAdapter naming ``name`` for every way a header can lie: a length beyond
    the file or over the cap, bad JSON, unknown dtypes, offsets that overlap or leave the
    file, or a byte count that disagrees with the shape.
    """
    if file_size < 8:
        raise InvalidAdapter(f"{name}: not a safetensors file (shorter than 8 bytes)")
    prefix = read(0, 8)
    if len(prefix) != 8:
        raise InvalidAdapter(f"{name}: could not read the safetensors length prefix")
    (n,) = struct.unpack("<Q", prefix)
    if n > max_header_bytes:
        raise InvalidAdapter(
            f"{name}: safetensors header claims {n} bytes, over the {max_header_bytes}-byte cap;"
            " the file is corrupt or hostile, re-save it with safetensors"
        )
    if 8 + n > file_size:
        raise InvalidAdapter(
            f"{name}: safetensors header length {n} runs past the end of the file"
            f" ({file_size} bytes); the file is truncated or corrupt"
        )
    raw = read(8, n)
    if len(raw) != n:
        raise InvalidAdapter(f"{name}: safetensors header is truncated")
    try:
        doc = json.loads(raw.decode("utf-8"), parse_int=_bounded_int)
    except _HugeNumber:
        raise InvalidAdapter(
            f"{name}: safetensors header holds an integer over {_MAX_INT_DIGITS} digits;"
            " no shape or offset is that large, the file is corrupt or hostile"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidAdapter(f"{name}: safetensors header is not valid JSON ({exc})") from None
    except RecursionError:
        raise InvalidAdapter(f"{name}: safetensors header is nested too deeply") from None
    if not isinstance(doc, dict):
        raise InvalidAdapter(f"{name}: safetensors header is not a JSON object")
    metadata_raw = doc.pop("__metadata__", None) or {}
    if not isinstance(metadata_raw, dict):
        raise InvalidAdapter(f"{name}: safetensors __metadata__ must be an object of strings")
    metadata = {str(k): str(v) for k, v in metadata_raw.items()}
    if len(doc) > MAX_TENSORS:
        raise InvalidAdapter(
            f"{name}: safetensors header lists {len(doc)} tensors, over the {MAX_TENSORS} cap"
        )
    data_size = file_size - 8 - n
    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int]] = []
    for tname, entry in doc.items():
        if len(tname) > MAX_TENSOR_NAME:
            raise InvalidAdapter(
                f"{name}: a tensor name is {len(tname)} characters ({tname[:60]!r}...), over"
                f" the {MAX_TENSOR_NAME} cap"
            )
        tensors[tname] = _tensor_info(name, tname, entry, data_size)
        spans.append((tensors[tname].start, tensors[tname].end))
    spans.sort()
    for (_, prev_end), (start, _) in zip(spans, spans[1:], strict=False):
        if start < prev_end:
            raise InvalidAdapter(f"{name}: tensors overlap in the data section; file is corrupt")
    return SafetensorsHeader(tensors=tensors, metadata=metadata, data_offset=8 + n)


def _tensor_info(name: str, tname: str, entry: object, data_size: int) -> TensorInfo:
    if not isinstance(entry, dict):
        raise InvalidAdapter(f"{name}: tensor {tname!r} has a malformed header entry")
    dtype = entry.get("dtype")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise InvalidAdapter(f"{name}: tensor {tname!r} has unknown dtype {repr(dtype)[:40]}")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise InvalidAdapter(
            f"{name}: tensor {tname!r} has an invalid shape (a list of at most {MAX_DIMS}"
            " dimensions is expected)"
        )
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < MAX_DIM for d in shape):
        raise InvalidAdapter(
            f"{name}: tensor {tname!r} has an invalid shape {repr(shape)[:200]}"
            " (each dimension must be an integer from 0 to 2**40)"
        )
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise InvalidAdapter(f"{name}: tensor {tname!r} has invalid data_offsets")
    start, end = offsets
    if not 0 <= start <= end <= data_size:
        raise InvalidAdapter(f"{name}: tensor {tname!r} points outside the file's data")
    # Cheap now: at most MAX_DIMS factors, each under 2**40.
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if expected != end - start:
        raise InvalidAdapter(
            f"{name}: tensor {tname!r} has {end - start} bytes but its shape {shape} and"
            f" dtype {dtype} need {expected}"
        )
    return TensorInfo(name=tname, dtype=dtype, shape=tuple(shape), start=start, end=end)


class _HugeNumber(ValueError):
    pass


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _HugeNumber(text[:20])
    return int(text)


def file_reader(path: Path) -> ReadRange:
    """A ReadRange over a local file (opens per call: headers are read once or twice)."""

    def read(offset: int, length: int) -> bytes:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(length)

    return read


def read_header_file(
    path: Path, *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
) -> SafetensorsHeader:
    """Parse the header of a local safetensors file."""
    return parse_header(
        file_reader(path), path.stat().st_size, name=path.name, max_header_bytes=max_header_bytes
    )
