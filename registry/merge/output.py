"""The merged model's files: shard headers and byte layout, the index, the config files.

The output keeps the base's shard files, tensor names and order. When no dtype changes, each
output header is the input header byte for byte, every tensor sits at the same offset, and
every byte range no adapter touches is a plain file-to-file copy.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from registry.formats.safetensors import DTYPE_SIZES, file_reader
from registry.merge.plan import INDEX_NAME, BaseLayout, TensorPlan
from registry.merge.tensor_io import encode_header, rows_of

_WEIGHT_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack",
    ".gguf", ".onnx",
)  # fmt: skip
_TORCH_DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


@dataclass(frozen=True)
class CopyOp:
    """Bytes copied unchanged from a base shard to the same-named output shard."""

    shard: str
    src_off: int
    dst_off: int
    length: int


@dataclass(frozen=True)
class TensorJob:
    """One changed tensor, written at ``dst_off`` of its output shard in chunks of rows."""

    plan: TensorPlan
    dst_off: int
    chunk_rows: int

    @property
    def n_rows(self) -> int:
        return rows_of(self.plan.info)

    def chunk_bytes(self, *, out: bool) -> int:
        """Bytes of the largest chunk, as read (stored dtype) or as written (output dtype)."""
        info = self.plan.info
        per_row = math.prod(info.shape[1:]) if info.shape else 1
        dtype = self.plan.out_dtype if out else info.dtype
        return min(self.chunk_rows, self.n_rows) * per_row * DTYPE_SIZES[dtype]

    def out_offset(self, row: int) -> int:
        """Absolute offset in the output shard where stored row ``row`` starts."""
        shape = self.plan.info.shape
        per_row = math.prod(shape[1:]) if shape else 1
        return self.dst_off + row * per_row * DTYPE_SIZES[self.plan.out_dtype]

    def chunks(self) -> list[tuple[int, int]]:
        n = self.n_rows
        return [(s, min(n, s + self.chunk_rows)) for s in range(0, n, self.chunk_rows)]


@dataclass(frozen=True)
class ShardLayout:
    """One output shard: its header, and after it, in file order, the byte runs copied from
    the base and the tensors computed (so the shard can be written, and hashed, front to
    back in one pass)."""

    name: str
    header: bytes
    data_size: int
    segments: tuple[CopyOp | TensorJob, ...] = ()


def layout_shards(
    base: BaseLayout, plans: dict[str, TensorPlan], *, chunk_elems: int
) -> tuple[list[ShardLayout], list[CopyOp], list[TensorJob]]:
    """Output headers, the copies of untouched byte runs, and the tensors to compute."""
    layouts: list[ShardLayout] = []
    copies: list[CopyOp] = []
    jobs: list[TensorJob] = []
    for shard in base.shards:
        header = base.headers[shard]
        tensors = sorted(header.tensors.values(), key=lambda t: t.start)
        # Tensors the base does not store (an untied lm_head) go at the end of the shard
        # holding the tensor they start from.
        added = [
            replace(p.info, name=p.name, start=-1, end=-1)
            for p in sorted(plans.values(), key=lambda p: p.name)
            if p.added and p.shard == shard
        ]
        tensors += added
        out_dtype = {
            t.name: plans[t.name].out_dtype if t.name in plans else t.dtype for t in tensors
        }
        if not added and all(out_dtype[t.name] == t.dtype for t in tensors):
            # Same bytes for the header: offsets (and __metadata__) carry over untouched.
            raw = file_reader(base.folder / shard)(0, header.data_offset)
        else:
            raw = encode_header(
                [(t.name, out_dtype[t.name], t.shape) for t in tensors], header.metadata
            )
        out_data = len(raw)
        dst = out_data
        run: CopyOp | None = None
        segments: list[CopyOp | TensorJob] = []
        for t in tensors:
            size = math.prod(t.shape) * DTYPE_SIZES[out_dtype[t.name]]
            src = header.data_offset + t.start
            if t.name in plans:
                per_row = max(1, math.prod(t.shape[1:]) if t.shape else 1)
                jobs.append(TensorJob(plans[t.name], dst, max(1, chunk_elems // per_row)))
                segments.append(jobs[-1])
                run = None
            elif (
                run is not None
                and run.src_off + run.length == src
                and run.dst_off + run.length == dst
            ):
                copies[-1] = segments[-1] = run = CopyOp(
                    shard, run.src_off, run.dst_off, run.length + size
                )
            else:
                run = CopyOp(shard, src, dst, size)
                copies.append(run)
                segments.append(run)
            dst += size
        kept = tuple(s for s in segments if not isinstance(s, CopyOp) or s.length)
        layouts.append(ShardLayout(shard, raw, dst - out_data, kept))
    return layouts, [c for c in copies if c.length], jobs


def copy_side_files(
    base_dir: Path, out_dir: Path, out_dtype: str | None, *, untie: bool = False
) -> list[str]:
    """Copy config, generation config, tokenizer and other small files; not weights.

    ``untie`` sets ``tie_word_embeddings`` to false in config.json: the output stores
    ``lm_head.weight`` apart from the embedding, and transformers must not tie them again.
    """
    copied = []
    for path in sorted(base_dir.iterdir()):
        name = path.name
        if name.startswith(".") or not path.is_file() or name == INDEX_NAME:
            continue
        if name.lower().endswith(_WEIGHT_SUFFIXES):
            continue
        if name == "config.json" and (out_dtype in _TORCH_DTYPE_NAMES or untie):
            doc = json.loads(path.read_text())
            if out_dtype in _TORCH_DTYPE_NAMES:
                for key in ("torch_dtype", "dtype"):
                    if key in doc or key == "dtype":
                        doc[key] = _TORCH_DTYPE_NAMES[out_dtype]
            if untie:
                doc["tie_word_embeddings"] = False
                if isinstance(doc.get("text_config"), dict):
                    doc["text_config"]["tie_word_embeddings"] = False
            (out_dir / name).write_text(json.dumps(doc, indent=2) + "\n")
        else:
            shutil.copyfile(path, out_dir / name)
        copied.append(name)
    return copied


def write_index(
    base: BaseLayout,
    out_dir: Path,
    layouts: list[ShardLayout],
    plans: dict[str, TensorPlan] | None = None,
) -> str | None:
    """The base's index with the same weight_map (plus any added tensor); total_size follows
    a dtype change."""
    if base.index is None:
        return None
    doc = dict(base.index)
    added = {p.name: p.shard for p in (plans or {}).values() if p.added}
    if added:
        doc["weight_map"] = {**doc["weight_map"], **added}  # type: ignore[dict-item]
    metadata = dict(doc.get("metadata") or {})  # type: ignore[call-overload]
    metadata["total_size"] = sum(layout.data_size for layout in layouts)
    doc["metadata"] = metadata
    (out_dir / INDEX_NAME).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return INDEX_NAME
