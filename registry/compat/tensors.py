"""Load one adapter tensor from a byte range, as a numpy array, without torch.

``tensor_loader(read, header)`` turns any ReadRange (a local file, a blob in storage)
into the loader the numbers rules take, reading exactly one tensor's bytes per call.
numpy is imported on first use: it ships with lorareg's ``merge`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registry.compat.rules import TensorLoader
from registry.errors import InvalidAdapter
from registry.formats.safetensors import ReadRange, SafetensorsHeader, file_reader, parse_header

_NUMPY_DTYPES = {
    "BOOL": "?", "U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2", "F16": "<f2",
    "I32": "<i4", "U32": "<u4", "F32": "<f4", "I64": "<i8", "U64": "<u8", "F64": "<f8",
}  # fmt: skip
DECODABLE = frozenset(_NUMPY_DTYPES) | {"BF16"}
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


def tensor_loader(read: ReadRange, header: SafetensorsHeader) -> TensorLoader:
    """A loader for the tensors ``header`` describes, reading bytes through ``read``.

    BF16 is widened to float32 (numpy has no bfloat16); F8 types are not decodable and
    raise InvalidAdapter, so callers check ``DECODABLE`` first.
    """

    def load(key: str) -> Any:
        import numpy as np

        info = header.tensors[key]
        if info.dtype not in DECODABLE:
            raise InvalidAdapter(f"tensor {key!r}: dtype {info.dtype} cannot be decoded")
        length = info.end - info.start
        raw = read(header.data_offset + info.start, length)
        if len(raw) != length:
            raise InvalidAdapter(f"tensor {key!r} is truncated ({len(raw)} of {length} bytes)")
        if info.dtype == "BF16":
            # bfloat16 is the top half of a float32: shift it back into place.
            arr = (np.frombuffer(raw, dtype="<u2").astype("<u4") << 16).view("<f4")
        else:
            arr = np.frombuffer(raw, dtype=_NUMPY_DTYPES[info.dtype])
        return arr.reshape(info.shape)

    return load


def local_tensor_loader(path: Path) -> tuple[SafetensorsHeader, TensorLoader]:
    """The header of a local safetensors file and a loader for its tensors."""
    read = file_reader(path)
    header = parse_header(read, path.stat().st_size, name=path.name)
    return header, tensor_loader(read, header)
