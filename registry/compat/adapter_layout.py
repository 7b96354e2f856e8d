"""What every tensor of an adapter is, and which base parameter each adapted module hits.

``adapter_layout`` sorts the tensors of ``adapter_model.safetensors`` into LoRA pairs and
the extras PEFT saves for some options (DoRA magnitudes, biases, ``modules_to_save``
copies, trainable-token deltas); whatever is left is an orphan. ``resolve_modules`` maps
each adapted module onto the base model's ``<module>.weight``. Both work on headers alone.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from registry.compat.architectures import is_head_module
from registry.compat.fingerprint import BaseModelInfo
from registry.formats.peft import PeftConfig
from registry.formats.safetensors import SafetensorsHeader, TensorInfo

PEFT_PREFIX = "base_model.model."

_PAIR = re.compile(
    r"^(?P<m>.+)\.(?P<kind>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.weight)?$"
)
_EXTRAS: list[tuple[str, re.Pattern[str]]] = [
    ("dora_magnitude", re.compile(r"^(?P<m>.+)\.lora_magnitude_vector(?:\.weight)?$")),
    ("lora_bias", re.compile(r"^(?P<m>.+)\.lora_B\.bias$")),
    ("embedding_copy", re.compile(r"^(?P<m>.+)\.base_layer\.weight$")),
    ("trainable_tokens", re.compile(r"^(?P<m>.+)\.token_adapter\.trainable_tokens_delta$")),
    ("bias", re.compile(r"^(?P<m>.+)\.bias$")),
]
_INDEX = re.compile(r"(?<=\.)\d+(?=\.)")


def strip_prefix(key: str) -> str:
    return key[len(PEFT_PREFIX) :] if key.startswith(PEFT_PREFIX) else key


@dataclass
class LoraPair:
    """One adapted module: its A and B tensors (either may be missing in a broken file)."""

    module: str
    a: TensorInfo | None = None
    b: TensorInfo | None = None
    embedding: bool = False

    @property
    def short_name(self) -> str:
        return self.module.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class ExtraTensor:
    """A non-LoRA tensor: ``kind`` is one of the ``_EXTRAS`` kinds, ``modules_to_save``
    or ``orphan``; ``module`` is the module it belongs to."""

    kind: str
    module: str
    tensor: TensorInfo


@dataclass
class AdapterLayout:
    pairs: dict[str, LoraPair] = field(default_factory=dict)
    extras: list[ExtraTensor] = field(default_factory=list)

    def extras_of(self, kind: str) -> list[ExtraTensor]:
        return [e for e in self.extras if e.kind == kind]

    def owner(self, key: str) -> str:
        """The module a tensor key belongs to."""
        for pair in self.pairs.values():
            if key in (pair.a and pair.a.name, pair.b and pair.b.name):
                return pair.module
        for extra in self.extras:
            if extra.tensor.name == key:
                return extra.module
        return strip_prefix(key)

    def max_rank(self) -> int:
        ranks = [p.a.shape[0] for p in self.pairs.values() if p.a is not None and p.a.shape]
        return max(ranks, default=0)


def adapter_layout(config: PeftConfig, header: SafetensorsHeader) -> AdapterLayout:
    """Classify every tensor; an extra whose option is off in the config is an orphan."""
    layout = AdapterLayout()
    pending: list[tuple[str, TensorInfo]] = []
    for key, info in sorted(header.tensors.items()):
        name = strip_prefix(key)
        m = _PAIR.match(name)
        if m:
            pair = layout.pairs.setdefault(m["m"], LoraPair(m["m"]))
            pair.embedding = pair.embedding or m["kind"].startswith("lora_embedding")
            if m["kind"].endswith("A"):
                pair.a = info
            else:
                pair.b = info
        else:
            pending.append((name, info))
    enabled = _enabled_extras(config)
    saved = config.modules_to_save or []
    for name, info in pending:
        layout.extras.append(_classify(name, info, layout, enabled, saved))
    return layout


def _enabled_extras(config: PeftConfig) -> set[str]:
    extra = config.model_extra or {}
    on = {"embedding_copy"}
    if config.use_dora:
        on.add("dora_magnitude")
    if extra.get("lora_bias"):
        on.add("lora_bias")
    if config.bias != "none":
        on.add("bias")
    if extra.get("trainable_token_indices"):
        on.add("trainable_tokens")
    return on


def _classify(
    name: str, info: TensorInfo, layout: AdapterLayout, enabled: set[str], saved: list[str]
) -> ExtraTensor:
    owner = name.rsplit(".", 1)[0]
    if any(owner == s or owner.endswith("." + s) for s in saved):
        return ExtraTensor("modules_to_save", owner, info)
    for kind, pattern in _EXTRAS:
        m = pattern.match(name)
        if not m or kind not in enabled:
            continue
        # PEFT copies the base weight of a targeted input or output embedding (the
        # embedding LoRA, or lm_head's) when it saves ("save_embedding_layers").
        pair = layout.pairs.get(m["m"])
        if kind == "embedding_copy" and not (
            pair and (pair.embedding or is_head_module(pair.module))
        ):
            continue
        # A LoRA-wrapped layer's own bias is saved as <module>.base_layer.bias.
        module = m["m"].removesuffix(".base_layer") if kind == "bias" else m["m"]
        return ExtraTensor(kind, module, info)
    return ExtraTensor("orphan", owner, info)


def layer_template(name: str) -> tuple[str, tuple[int, ...]]:
    """``model.layers.7.mlp.up_proj`` -> ``("model.layers.#.mlp.up_proj", (7,))``."""
    indices = tuple(int(i) for i in _INDEX.findall(name))
    return _INDEX.sub("#", name), indices


@dataclass
class Resolution:
    """Where each adapted module lands in the base model.

    ``found`` maps module -> base parameter name; ``out_of_range`` maps module -> (its
    layer index, the highest index the base has there); ``missing`` lists modules with no
    counterpart at all.
    """

    found: dict[str, str] = field(default_factory=dict)
    out_of_range: dict[str, tuple[int, int]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    prefix_mapped: dict[str, str] = field(default_factory=dict)


def resolve_modules(modules: list[str], base: BaseModelInfo) -> Resolution:
    """Resolve each module to ``<module>.weight`` in the base, tolerating a different
    top-level prefix (an adapter trained on ``LlamaModel`` against a ``...ForCausalLM``
    checkpoint, or the reverse) when exactly one base parameter matches."""
    names = set(base.tensors)
    index: _BaseIndex | None = None
    res = Resolution()
    for module in modules:
        target = f"{module}.weight"
        if target in names:
            res.found[module] = target
            continue
        index = index or _BaseIndex(names)  # built only when some name needs it
        alias = _tied_head(module, base)
        candidates = [alias] if alias else index.prefixed(target)
        if len(candidates) == 1:
            res.found[module] = candidates[0]
            res.prefix_mapped[module] = candidates[0]
        elif beyond := index.out_of_range(target):
            res.out_of_range[module] = beyond
        else:
            res.missing.append(module)
    return res


class _BaseIndex:
    """Base parameter names by suffix and by layer template."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.by_suffix: dict[str, list[str]] = defaultdict(list)
        self.templates: dict[str, list[tuple[int, ...]]] = defaultdict(list)
        for n in names:
            parts = n.split(".")
            for i in range(1, len(parts)):
                self.by_suffix[".".join(parts[i:])].append(n)
            tmpl, idx = layer_template(n)
            self.templates[tmpl].append(idx)

    def prefixed(self, target: str) -> list[str]:
        """Base names equal to ``target`` under an extra prefix, or with one stripped."""
        if hits := self.by_suffix.get(target):
            return hits
        parts = target.split(".")
        return [s for i in range(1, len(parts) - 1) if (s := ".".join(parts[i:])) in self.names][:1]

    def out_of_range(self, target: str) -> tuple[int, int] | None:
        """(index, highest index the base has there) for the first index past the end."""
        tmpl, idx = layer_template(target)
        seen = self.templates.get(tmpl)
        if not seen or not idx:
            return None
        for pos, i in enumerate(idx):
            highest = max(t[pos] for t in seen)
            if i > highest:
                return i, highest
        return None


def _tied_head(module: str, base: BaseModelInfo) -> str | None:
    """A LoRA on ``lm_head`` of a model whose head is tied to (and saved as) its embedding."""
    if module.rsplit(".", 1)[-1] != "lm_head" or not base.architecture.get("tie_word_embeddings"):
        return None
    for suffix in ("embed_tokens.weight", "wte.weight", "word_embeddings.weight"):
        hits = [n for n in base.tensors if n.endswith(suffix)]
        if len(hits) == 1:
            return hits[0]
    return None
