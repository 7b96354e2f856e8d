"""Base model fingerprints, computed from safetensors headers and per-file sha256s only.

Two hashes identify a base model:

- ``structure_hash``: sha256 of the canonical JSON ``[[name, dtype, [shape...]], ...]``
  sorted by name. Two checkpoints of one architecture and size share it, whatever their
  weights or sharding.
- ``content_hash``: sha256 of the canonical JSON ``[[path, sha256], ...]`` of the weight
  files sorted by path. It is ``None`` when a file's sha256 is unknown (an S3 object
  without checksum metadata, read without ``compute_sha256``): a hash over part of the
  files would claim an identity it cannot prove.

"Canonical JSON" is ``json.dumps(..., separators=(",", ":"), ensure_ascii=True)``, so any
client can recompute both hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from registry.errors import InvalidAdapter, InvalidBaseModel
from registry.formats.safetensors import DEFAULT_MAX_HEADER_BYTES, ReadRange, parse_header

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
MAX_JSON_BYTES = 64 * 1024 * 1024  # an index of a huge MoE model is tens of MB at most

TensorSpec = tuple[str, tuple[int, ...]]
"""``(dtype, shape)`` of one base tensor, dtype as safetensors spells it (``BF16``)."""


class BaseFile(NamedTuple):
    """One weight file of a base model: a plain ``(path, size, sha256)`` tuple."""

    path: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class BaseFingerprint:
    """The identity of a base model, as recorded with an adapter at push time."""

    structure_hash: str
    content_hash: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"structure_hash": self.structure_hash, "content_hash": self.content_hash}


@dataclass(frozen=True)
class BaseModelInfo:
    """What lorareg records about a base model: every tensor, the architecture, the hashes.

    ``source`` is the canonical place it was read from (an ``hf://`` source pinned to the
    commit it resolved to); ``bytes_read`` counts every payload byte fetched to build it.
    """

    tensors: dict[str, TensorSpec]
    architecture: dict[str, Any]
    files: list[BaseFile]
    structure_hash: str
    content_hash: str | None
    source: str = ""
    bytes_read: int = 0
    metadata: dict[str, str] = field(default_factory=dict)

    def fingerprint(self) -> BaseFingerprint:
        return BaseFingerprint(self.structure_hash, self.content_hash)

    @property
    def vocab_size(self) -> int | None:
        """From config.json (top level, or ``text_config`` for multimodal models)."""
        for doc in (self.architecture, self.architecture.get("text_config") or {}):
            v = doc.get("vocab_size") if isinstance(doc, dict) else None
            if isinstance(v, int) and not isinstance(v, bool):
                return v
        return None

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "tensors": {k: [d, list(s)] for k, (d, s) in sorted(self.tensors.items())},
            "architecture": self.architecture,
            "files": [list(f) for f in self.files],
            "structure_hash": self.structure_hash,
            "content_hash": self.content_hash,
            "source": self.source,
            "bytes_read": self.bytes_read,
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BaseModelInfo:
        return cls(
            tensors={k: (d, tuple(s)) for k, (d, s) in doc["tensors"].items()},
            architecture=dict(doc.get("architecture") or {}),
            files=[BaseFile(p, int(n), h) for p, n, h in doc["files"]],
            structure_hash=doc["structure_hash"],
            content_hash=doc.get("content_hash"),
            source=doc.get("source", ""),
            bytes_read=int(doc.get("bytes_read", 0)),
            metadata=dict(doc.get("metadata") or {}),
        )


def _canonical(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode()


def structure_hash(tensors: dict[str, TensorSpec]) -> str:
    """sha256 over the sorted ``(name, dtype, shape)`` triples (see the module docstring)."""
    rows = sorted([name, dtype, list(shape)] for name, (dtype, shape) in tensors.items())
    return hashlib.sha256(_canonical(rows)).hexdigest()


def content_hash(files: list[BaseFile]) -> str | None:
    """sha256 over the sorted ``(path, sha256)`` pairs; None if any sha256 is unknown."""
    if not files or any(f.sha256 is None for f in files):
        return None
    rows = sorted([f.path, f.sha256] for f in files)
    return hashlib.sha256(_canonical(rows)).hexdigest()


class BaseSource(Protocol):
    """Where a base model's files live: a folder, an S3 prefix, a hub repository.

    Implementations count every payload byte they return in ``bytes_read`` and raise
    BaseSourceNotFound when the source itself does not exist.
    """

    url: str
    bytes_read: int

    def files(self) -> dict[str, int]:
        """Top-level file names and sizes."""
        ...

    def read(self, path: str, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset + length)`` of one file."""
        ...

    def read_small(self, path: str, size: int) -> bytes:
        """A whole small file (config.json, the shard index)."""
        ...

    def known_sha256(self, path: str) -> str | None:
        """The file's sha256 if the source knows it without reading the data."""
        ...

    def stream(self, path: str) -> Iterator[bytes]:
        """The file's bytes, in chunks (only used to compute a missing sha256)."""
        ...


def read_base_model(
    source: BaseSource,
    *,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    compute_sha256: bool = False,
) -> BaseModelInfo:
    """Fingerprint a base model from its safetensors headers, without loading weights.

    Weight files: the shards named by ``model.safetensors.index.json``; else
    ``model.safetensors``; else every top-level ``*.safetensors``. Raises InvalidBaseModel
    for a source without safetensors, a header over ``max_header_bytes``, an index that
    disagrees with its shards, or a tensor stored twice.
    """
    listing = source.files()
    weight_names, index_map = _weight_files(source, listing)
    if "adapter_config.json" in listing and all(n.startswith("adapter_") for n in weight_names):
        # A PEFT adapter's folder: its LoRA tensors would pass for a (very odd) base.
        raise InvalidBaseModel(
            f"{source.url} holds a PEFT adapter (adapter_config.json), not base model"
            " weights; push it with `lorareg push DIR REPO` and register the base model it"
            " was trained on instead"
        )
    tensors: dict[str, TensorSpec] = {}
    where: dict[str, str] = {}
    metadata: dict[str, str] = {}
    for name in weight_names:
        try:
            header = parse_header(
                _reader(source, name),
                listing[name],
                name=f"{source.url}/{name}",
                max_header_bytes=max_header_bytes,
            )
        except InvalidAdapter as exc:
            raise InvalidBaseModel(exc.message) from None
        metadata.update(header.metadata)
        for tname, info in header.tensors.items():
            if tname in tensors:
                raise InvalidBaseModel(
                    f"{source.url}: tensor {tname!r} is stored in both {where[tname]} and"
                    f" {name}; keep one copy of the weights (e.g. drop a consolidated file)"
                )
            tensors[tname] = (info.dtype, info.shape)
            where[tname] = name
    for tname, shard in index_map.items():
        if where.get(tname) != shard:
            raise InvalidBaseModel(
                f"{source.url}: {INDEX_NAME} puts {tname!r} in {shard}, but that shard's"
                " header does not hold it; re-save the model with save_pretrained"
            )
    files = []
    for name in weight_names:
        sha = source.known_sha256(name)
        if sha is None and compute_sha256:
            digest = hashlib.sha256()
            for chunk in source.stream(name):
                digest.update(chunk)
            sha = digest.hexdigest()
        files.append(BaseFile(name, listing[name], sha))
    return BaseModelInfo(
        tensors=tensors,
        architecture=_architecture(source, listing),
        files=files,
        structure_hash=structure_hash(tensors),
        content_hash=content_hash(files),
        source=source.url,
        bytes_read=source.bytes_read,
        metadata=metadata,
    )


def _reader(source: BaseSource, path: str) -> ReadRange:
    def read(offset: int, length: int) -> bytes:
        return source.read(path, offset, length)

    return read


def _read_json(source: BaseSource, listing: dict[str, int], name: str) -> Any:
    size = listing[name]
    if size > MAX_JSON_BYTES:
        raise InvalidBaseModel(f"{source.url}/{name} is {size} bytes; that is not a {name}")
    try:
        return json.loads(source.read_small(name, size).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidBaseModel(f"{source.url}/{name} is not valid JSON: {exc}") from None


def _weight_files(source: BaseSource, listing: dict[str, int]) -> tuple[list[str], dict[str, str]]:
    if INDEX_NAME in listing:
        index = _read_json(source, listing, INDEX_NAME)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise InvalidBaseModel(f"{source.url}/{INDEX_NAME} has no weight_map")
        shards = sorted({str(v) for v in weight_map.values()})
        missing = [s for s in shards if s not in listing]
        if missing:
            raise InvalidBaseModel(
                f"{source.url}: {INDEX_NAME} names shards that are not there: {missing};"
                " upload every shard next to the index"
            )
        return shards, {str(k): str(v) for k, v in weight_map.items()}
    if SINGLE_NAME in listing:
        return [SINGLE_NAME], {}
    found = sorted(p for p in listing if p.endswith(".safetensors"))
    if not found:
        # The folder's other file names are not shown: a server must not list its disk.
        raise InvalidBaseModel(
            f"{source.url} holds no safetensors weights; point at the folder"
            " with model.safetensors or model.safetensors.index.json (save the model with"
            " save_pretrained(..., safe_serialization=True))"
        )
    return found, {}


def _architecture(source: BaseSource, listing: dict[str, int]) -> dict[str, Any]:
    if CONFIG_NAME not in listing:
        return {}
    doc = _read_json(source, listing, CONFIG_NAME)
    if not isinstance(doc, dict):
        raise InvalidBaseModel(f"{source.url}/{CONFIG_NAME} must hold a JSON object")
    return doc
