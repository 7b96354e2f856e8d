"""Adapters as merge inputs: what every tensor of adapter_model.safetensors does to the base.

An adapter folder is validated by ``registry.formats.adapter.inspect_adapter`` and then each
tensor is given a meaning, or the adapter is refused:

- ``<module>.lora_A.weight`` / ``lora_B.weight`` (``lora_embedding_A`` / ``_B`` for embeddings):
  a low-rank change ``scale * B @ A`` of ``<module>.weight``, with PEFT's scale (lora_alpha / r,
  rsLoRA lora_alpha / sqrt(r), rank_pattern and alpha_pattern matched like PEFT does).
- ``<module>.lora_magnitude_vector``: DoRA's magnitude for that module.
- ``<module>.base_layer.weight``: a copy of the base weight PEFT saves with embedding targets
  (``save_embedding_layers``); PEFT loads it over the base, so it replaces the base tensor.
- ``<module>.base_layer.bias`` (``bias="lora_only"`` or ``"all"``) and ``<module>.bias``
  (``bias="all"``): a trained bias, which replaces the base's (what merge_and_unload keeps).
- any other tensor under a ``modules_to_save`` module: replaces the base tensor of that name.

Refused, because a merge could not reproduce what PEFT computes: ``lora_bias``,
initialisations that rewrite the base weights (PiSSA, CorDA, OLoRA, LoftQ, LoRA-GA; convert
them to plain LoRA first), LoRA variants with their own forward (aLoRA, Arrow, BD-LoRA, VeLoRA,
MonteCLoRA, KaSA, QA-LoRA), layer replication, trainable tokens, parameter targets,
convolution LoRA, and any tensor this list does not explain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from registry.errors import InvalidAdapter, InvalidInput
from registry.formats.adapter import inspect_adapter, local_files
from registry.formats.peft import WEIGHTS_NAME, PeftConfig
from registry.formats.safetensors import SafetensorsHeader

SAVE_PREFIX = "base_model.model."
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})

_BASE_MODIFYING_INITS = ("pissa", "corda", "olora", "loftq", "lora_ga")
_UNMERGEABLE_FIELDS: dict[str, str] = {
    "layer_replication": "layer_replication duplicates base layers, so the merged model would"
    " need a different structure",
    "trainable_token_indices": "trainable tokens are a separate per-token delta",
    "target_parameters": "target_parameters adapts raw parameters (mixture-of-experts weights)",
    "alora_invocation_tokens": "activated LoRA only applies after its invocation tokens, so it"
    " cannot be folded into a weight",
    "arrow_config": "Arrow routes between experts per token",
    "use_bdlora": "BD-LoRA uses block-diagonal factors",
    "velora_config": "VeLoRA changes the forward pass",
    "monteclora_config": "MonteCLoRA samples its factors",
    "kasa_config": "KaSA rescales singular values of the base",
    "use_qalora": "QA-LoRA pools inputs before lora_A",
    "megatron_config": "Megatron tensor-parallel layers are sharded differently",
}
_MAGNITUDE = re.compile(r"^(?P<module>.+)\.lora_magnitude_vector(?:\.weight)?$")
_BASE_LAYER = re.compile(r"^(?P<module>.+)\.base_layer\.(?P<param>[^.]+)$")
_LORA = re.compile(r"\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(\.weight)?$")


@dataclass(frozen=True)
class AdapterInput:
    """One adapter to merge: a local folder holding adapter_config.json and
    adapter_model.safetensors; ``name`` labels it in reports (defaults to the folder name)."""

    folder: Path
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.folder.name


@dataclass(frozen=True)
class LoraModule:
    """One adapted module, named as in the base model (PEFT's save prefix removed)."""

    module: str
    a_key: str
    b_key: str
    magnitude_key: str | None
    scale: float
    rank: int
    in_features: int
    out_features: int
    embedding: bool


@dataclass(frozen=True)
class Replacement:
    """An adapter tensor that replaces the base tensor ``target``."""

    target: str
    key: str
    kind: Literal["modules_to_save", "base_layer", "bias"]


@dataclass
class LoadedAdapter:
    label: str
    folder: Path
    config: PeftConfig
    header: SafetensorsHeader
    loras: dict[str, LoraModule] = field(default_factory=dict)
    replacements: list[Replacement] = field(default_factory=list)

    @property
    def weights_path(self) -> Path:
        return self.folder / WEIGHTS_NAME

    @property
    def dora(self) -> bool:
        return self.config.use_dora


def strip_save_prefix(key: str) -> str:
    return key[len(SAVE_PREFIX) :] if key.startswith(SAVE_PREFIX) else key


def load_adapters(inputs: Sequence[AdapterInput]) -> list[LoadedAdapter]:
    """Validate every adapter and give each of its tensors a meaning (see the module docstring).

    Raises InvalidAdapter naming the adapter and the reason for anything a merge cannot
    reproduce exactly.
    """
    if not inputs:
        raise InvalidInput("a merge needs at least one adapter")
    return [load_adapter(a) for a in inputs]


def load_adapter(source: AdapterInput) -> LoadedAdapter:
    label = source.label
    folder = Path(source.folder)
    contents = inspect_adapter(local_files(folder))
    config = contents.config
    _check_config(label, config)
    adapter = LoadedAdapter(label=label, folder=folder, config=config, header=contents.header)
    tensors = contents.header.tensors
    magnitudes: dict[str, str] = {}
    for key, info in tensors.items():
        if info.dtype not in FLOAT_DTYPES:
            raise InvalidAdapter(
                f"adapter {label}: tensor {key} has dtype {info.dtype}, not a float"
            )
        if _LORA.search(key):
            continue
        if m := _MAGNITUDE.match(key):
            magnitudes[m.group("module")] = key
        elif m := _BASE_LAYER.match(key):
            target = f"{strip_save_prefix(m.group('module'))}.{m.group('param')}"
            adapter.replacements.append(Replacement(target=target, key=key, kind="base_layer"))
        elif _in_modules_to_save(strip_save_prefix(key), config.modules_to_save):
            target = strip_save_prefix(key)
            adapter.replacements.append(Replacement(target=target, key=key, kind="modules_to_save"))
        elif config.bias != "none" and key.endswith(".bias"):
            target = strip_save_prefix(key)
            adapter.replacements.append(Replacement(target=target, key=key, kind="bias"))
        else:
            raise InvalidAdapter(
                f"adapter {label}: tensor {key} is neither a LoRA factor, a DoRA magnitude nor"
                " part of a modules_to_save module, so lorareg cannot tell what merging it means"
                " (trainable tokens are not merged)"
            )
    if magnitudes and not config.use_dora:
        raise InvalidAdapter(
            f"adapter {label}: holds DoRA magnitude vectors but use_dora is false in"
            " adapter_config.json; the config and the weights disagree"
        )
    for saved_name, mod in contents.modules.items():
        a_key, b_key = _factor_keys(tensors, saved_name, mod.embedding)
        if len(mod.a_shape) != 2 or len(mod.b_shape) != 2:
            raise InvalidAdapter(
                f"adapter {label}: {saved_name} has {len(mod.a_shape)}-D LoRA factors;"
                " convolution LoRA is not merged by lorareg"
            )
        magnitude_key = magnitudes.pop(saved_name, None)
        if config.use_dora and magnitude_key is None:
            raise InvalidAdapter(
                f"adapter {label}: use_dora is true but {saved_name} has no lora_magnitude_vector"
            )
        module = strip_save_prefix(saved_name)
        adapter.loras[module] = LoraModule(
            module=module,
            a_key=a_key,
            b_key=b_key,
            magnitude_key=magnitude_key,
            scale=config.scaling(module),
            rank=mod.a_shape[0],
            in_features=mod.a_shape[1],
            out_features=mod.b_shape[0],
            embedding=mod.embedding,
        )
        if magnitude_key is not None and tensors[magnitude_key].shape != (mod.b_shape[0],):
            raise InvalidAdapter(
                f"adapter {label}: {magnitude_key} has shape {list(tensors[magnitude_key].shape)},"
                f" expected [{mod.b_shape[0]}] (one magnitude per output feature)"
            )
    for orphan in magnitudes:
        raise InvalidAdapter(f"adapter {label}: {orphan} has a DoRA magnitude but no lora_A/lora_B")
    return adapter


def _check_config(label: str, config: PeftConfig) -> None:
    extra = config.model_extra or {}
    if config.bias not in ("none", "all", "lora_only"):
        raise InvalidAdapter(
            f"adapter {label}: bias={config.bias!r} is not one of PEFT's values"
            " (none, all, lora_only)"
        )
    if extra.get("lora_bias"):
        raise InvalidAdapter(
            f"adapter {label}: lora_bias=true adds a trained bias to lora_B; lorareg does not"
            " merge LoRA biases"
        )
    init = extra.get("init_lora_weights")
    if isinstance(init, str) and init.lower().startswith(_BASE_MODIFYING_INITS):
        raise InvalidAdapter(
            f"adapter {label}: init_lora_weights={init!r} rewrites the base weights at"
            " initialisation, so merging into the original base would be wrong; convert it to a"
            " plain LoRA with PEFT's save_pretrained(...,"
            " path_initial_model_for_weight_conversion=...)"
        )
    for name, why in _UNMERGEABLE_FIELDS.items():
        if extra.get(name):
            raise InvalidAdapter(f"adapter {label}: {name} is set; {why}, so it cannot be merged")


def _in_modules_to_save(key: str, modules_to_save: list[str] | None) -> bool:
    # PEFT wraps a module when its name ends with an entry of modules_to_save.
    module = key.rpartition(".")[0]
    return bool(modules_to_save) and any(module.endswith(t) for t in modules_to_save or [])


def _factor_keys(
    tensors: Mapping[str, object], saved_name: str, embedding: bool
) -> tuple[str, str]:
    kinds = ("lora_embedding_A", "lora_embedding_B") if embedding else ("lora_A", "lora_B")
    keys = []
    for kind in kinds:
        plain, weight = f"{saved_name}.{kind}", f"{saved_name}.{kind}.weight"
        keys.append(weight if weight in tensors else plain)
    return keys[0], keys[1]
