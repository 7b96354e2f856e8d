"""The merge plan: which base tensors change, through which adapters, and what is refused.

Everything here reads headers only; no tensor data is touched until the engine runs, so a
merge that cannot be done exactly is refused before any output is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from registry.compat.architectures import (
    HEAD_WEIGHT,
    ModuleKind,
    embedding_weight,
    is_head_module,
    module_kind,
    ties_embeddings,
)
from registry.errors import InvalidAdapter, InvalidInput, UnsafeFormat
from registry.formats.safetensors import SafetensorsHeader, TensorInfo, read_header_file
from registry.merge.adapters import FLOAT_DTYPES, LoadedAdapter, LoraModule, Replacement
from registry.merge.methods import check_composition, check_linear_ranks

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
_MAX_CONFIG_BYTES = 4 * 2**20


@dataclass(frozen=True)
class BaseLayout:
    """A base model folder: its safetensors shards, their headers, and the index (if any)."""

    folder: Path
    shards: list[str]
    headers: dict[str, SafetensorsHeader]
    tensor_shard: dict[str, str]
    index: dict[str, object] | None
    # config.json ({} when absent): says which layers are Conv1D and whether lm_head is tied.
    architecture: dict[str, object] = field(default_factory=dict)

    def info(self, name: str) -> TensorInfo:
        return self.headers[self.tensor_shard[name]].tensors[name]

    @property
    def tied_embedding(self) -> str | None:
        """The input embedding transformers ties lm_head to when it loads this base."""
        names = self.tensor_shard.keys()
        return embedding_weight(names) if ties_embeddings(self.architecture, names) else None


@dataclass(frozen=True)
class Contribution:
    """What one adapter does to one base tensor (a LoRA term, a replacement, or both)."""

    adapter: int
    weight: float
    lora: LoraModule | None
    replacement: Replacement | None


@dataclass
class TensorPlan:
    """How one base tensor becomes its output: the adapters changing it and the output dtype.

    ``transposed`` is true when the tensor is stored (in, out) (GPT-2's Conv1D, embeddings),
    so the LoRA delta is ``(B @ A).T`` as PEFT computes it. ``kind`` is the base layer's
    type, which the verification probes through (independently of ``transposed``).
    ``source`` names the base tensor the values start from when it is not ``name`` itself:
    an ``lm_head.weight`` written separately from the embedding it was tied to (``added``
    when the base stores no such tensor).
    """

    name: str
    shard: str
    info: TensorInfo
    out_dtype: str
    transposed: bool = False
    contributions: list[Contribution] = field(default_factory=list)
    kind: Literal["linear", "conv1d", "embedding"] | None = None
    source: str | None = None
    added: bool = False

    @property
    def read_name(self) -> str:
        """The base tensor whose stored rows this tensor starts from."""
        return self.source or self.name

    @property
    def has_dora(self) -> bool:
        return any(c.lora is not None and c.lora.magnitude_key for c in self.contributions)

    @property
    def has_replacement(self) -> bool:
        return any(c.replacement is not None for c in self.contributions)


def read_base(folder: Path) -> BaseLayout:
    """Read a base model folder's index and shard headers; refuse pickles and gaps."""
    if not folder.is_dir():
        raise InvalidInput(f"base model folder {folder} does not exist")
    index: dict[str, object] | None = None
    index_path = folder / INDEX_NAME
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{index_path} is not valid JSON ({exc})") from None
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise InvalidInput(f"{index_path} has no weight_map")
        shards = sorted(set(map(str, weight_map.values())))
    elif (folder / SINGLE_NAME).is_file():
        weight_map, shards = None, [SINGLE_NAME]
    elif any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
        raise UnsafeFormat(
            f"base model {folder} has only pickle-based weights; lorareg merges safetensors"
            " bases (re-save it with save_pretrained(..., safe_serialization=True))"
        )
    else:
        raise InvalidInput(f"base model folder {folder} holds no {SINGLE_NAME} or {INDEX_NAME}")
    headers: dict[str, SafetensorsHeader] = {}
    tensor_shard: dict[str, str] = {}
    for shard in shards:
        path = folder / shard
        if "/" in shard or shard.startswith(".") or not path.is_file():
            raise InvalidInput(
                f"base model {folder}: shard {shard!r} named by the index is missing"
            )
        try:
            headers[shard] = read_header_file(path)
        except InvalidAdapter as exc:
            raise InvalidInput(f"base model shard {shard}: {exc.message}") from None
        for name in headers[shard].tensors:
            if name in tensor_shard:
                raise InvalidInput(f"base model {folder}: tensor {name} appears in two shards")
            tensor_shard[name] = shard
    if weight_map is not None:
        for name, shard in weight_map.items():
            if tensor_shard.get(name) != shard:
                raise InvalidInput(
                    f"{index_path}: maps {name} to {shard}, but that shard does not hold it"
                )
    return BaseLayout(
        folder=folder,
        shards=shards,
        headers=headers,
        tensor_shard=tensor_shard,
        index=index,
        architecture=_read_config(folder),
    )


def _read_config(folder: Path) -> dict[str, object]:
    path = folder / CONFIG_NAME
    if not path.is_file():
        return {}
    if path.stat().st_size > _MAX_CONFIG_BYTES:
        raise InvalidInput(f"{path} is over {_MAX_CONFIG_BYTES} bytes; not a model config")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid JSON ({exc})") from None
    return doc if isinstance(doc, dict) else {}


def resolve_name(name: str, names: set[str], prefixes: set[str]) -> str | None:
    """Find the base tensor an adapter names, allowing for a model prefix on either side.

    GPT-2 checkpoints on the Hub are saved without ``transformer.`` while adapters trained on
    ``GPT2LMHeadModel`` carry it; the reverse happens with bases saved from a bare model.
    """
    if name in names:
        return name
    found = []
    _, _, rest = name.partition(".")
    if rest and rest in names:
        found.append(rest)
    found.extend(f"{p}.{name}" for p in sorted(prefixes) if f"{p}.{name}" in names)
    return found[0] if len(found) == 1 else None


def build_plan(
    base: BaseLayout,
    adapters: Sequence[LoadedAdapter],
    weights: Sequence[float],
    method: str,
    out_dtype: str | None,
    same_as_base: Callable[[str, LoadedAdapter, Replacement], bool] | None = None,
) -> dict[str, TensorPlan]:
    """One TensorPlan per base tensor that changes (by an adapter or by a dtype cast).

    ``same_as_base(name, adapter, replacement)`` lets the caller drop the base_layer copies
    PEFT saves with embedding targets when they hold the base's own values (the usual case),
    so such adapters still compose with ``cat`` and ``svd``.

    Refuses, naming adapter and tensor: a key matching no base tensor, shapes that disagree,
    non-float targets, two adapters replacing one tensor, and DoRA or replacements under
    ``cat`` / ``svd`` where those methods could not reproduce them.
    """
    names = set(base.tensor_shard)
    prefixes = {n.split(".", 1)[0] for n in names if "." in n}
    tied = base.tied_embedding
    plans: dict[str, TensorPlan] = {}

    def new_plan(name: str, source: str | None = None) -> TensorPlan:
        src = source or name
        info = base.info(src)
        return TensorPlan(
            name=name,
            shard=base.tensor_shard[src],
            info=info,
            out_dtype=out_dtype or info.dtype,
            source=source,
            added=name not in names,
        )

    def plan_for(target: str, adapter: LoadedAdapter, what: str) -> TensorPlan:
        if tied is not None and is_head_module(target.rsplit(".", 1)[0]):
            # The head is the embedding on load; written on its own, from the embedding.
            if HEAD_WEIGHT not in plans:
                plans[HEAD_WEIGHT] = new_plan(HEAD_WEIGHT, source=tied)
            return plans[HEAD_WEIGHT]
        resolved = resolve_name(target, names, prefixes)
        if resolved is None:
            raise InvalidAdapter(
                f"adapter {adapter.label}: {what} targets {target}, which is not a tensor of the"
                " base model (wrong base?)"
            )
        info = base.info(resolved)
        if info.dtype not in FLOAT_DTYPES:
            raise InvalidAdapter(
                f"adapter {adapter.label}: base tensor {resolved} is {info.dtype}; quantized bases"
                " cannot be merged exactly, use the unquantized base"
            )
        if resolved not in plans:
            plans[resolved] = new_plan(resolved)
        return plans[resolved]

    for idx, (adapter, weight) in enumerate(zip(adapters, weights, strict=True)):
        touched: dict[str, tuple[LoraModule | None, Replacement | None]] = {}
        for lora in adapter.loras.values():
            plan = plan_for(f"{lora.module}.weight", adapter, f"LoRA module {lora.module}")
            kind = "embedding" if lora.embedding else module_kind(base.architecture, lora.module)
            transposed = _orientation(plan, lora, adapter, kind)
            if plan.kind is not None and plan.kind != kind:
                raise InvalidInput(f"adapters disagree on the layer type of {plan.name}")
            plan.transposed, plan.kind = transposed, kind
            touched[plan.name] = (lora, None)
        for rep in adapter.replacements:
            plan = plan_for(rep.target, adapter, f"saved tensor {rep.key}")
            rep_info = adapter.header.tensors[rep.key]
            if rep_info.shape != plan.info.shape:
                raise InvalidAdapter(
                    f"adapter {adapter.label}: {rep.key} has shape {list(rep_info.shape)} but base"
                    f" tensor {plan.name} is {list(plan.info.shape)} (resized vocabulary?)"
                )
            if (
                rep.kind == "base_layer"
                and same_as_base
                and same_as_base(plan.read_name, adapter, rep)
            ):
                continue
            touched[plan.name] = (touched.get(plan.name, (None, None))[0], rep)
        for name, (mod, saved) in touched.items():
            plans[name].contributions.append(
                Contribution(adapter=idx, weight=weight, lora=mod, replacement=saved)
            )
    for name in [n for n, p in plans.items() if not p.contributions]:
        del plans[name]
    if tied is not None and tied in plans and HEAD_WEIGHT not in plans:
        # The embedding changes but the head must not: untie, the head keeps the base values.
        plans[HEAD_WEIGHT] = new_plan(HEAD_WEIGHT, source=tied)
    if method == "linear":
        check_linear_ranks(adapters)
    for plan in plans.values():
        check_composition(plan, adapters, method)
    if out_dtype is not None:
        for name in names - set(plans):
            info = base.info(name)
            if info.dtype in FLOAT_DTYPES and info.dtype != out_dtype:
                plans[name] = TensorPlan(
                    name=name, shard=base.tensor_shard[name], info=info, out_dtype=out_dtype
                )
    return plans


def untied(plans: dict[str, TensorPlan]) -> bool:
    """Whether the output writes lm_head apart from the embedding it was tied to."""
    return any(p.source is not None for p in plans.values())


def _orientation(
    plan: TensorPlan,
    lora: LoraModule,
    adapter: LoadedAdapter,
    kind: ModuleKind | Literal["embedding"] | None,
) -> bool:
    """Whether the stored tensor is (in, out), decided as PEFT does: by the layer's type.

    PEFT switches fan_in_fan_out on for a Conv1D and off for an nn.Linear whatever the
    adapter's config says, so the config is never consulted here.
    """
    shape = plan.info.shape
    natural, flipped = (lora.out_features, lora.in_features), (lora.in_features, lora.out_features)
    layer = {"conv1d": "Conv1D (stored in x out)", "linear": "Linear (stored out x in)"}
    if kind is None and natural == flipped:
        raise InvalidAdapter(
            f"adapter {adapter.label}: {lora.module} is square, and the base folder has no"
            f" {CONFIG_NAME} with a model_type to tell a Conv1D from a Linear layer; add the"
            " base's config.json"
        )
    if kind in ("embedding", "conv1d"):
        # Embedding: PEFT's delta is (B @ A).T (A is (r, vocab), B is (dim, r)).
        fits, transposed = shape == flipped, True
    elif kind == "linear":
        fits, transposed = shape == natural, False
    else:
        fits, transposed = shape in (natural, flipped), shape == flipped
    if fits:
        return transposed
    where = f" (a {layer[kind]})" if kind in layer else ""
    raise InvalidAdapter(
        f"adapter {adapter.label}: {lora.module} has lora_A {lora.rank}x{lora.in_features} and"
        f" lora_B {lora.out_features}x{lora.rank}, which does not fit base tensor {plan.name}"
        f" of shape {list(shape)}{where}"
    )
