"""A stored LoRA adapter's factors as numpy arrays, one module at a time, from its files'
bytes wherever they are (``AdapterFile.read``: a local folder or the blob store): what the
promotion gate needs to compute interference without PyTorch.

Modules are named and scaled as the library names and scales them (PEFT's save prefix
removed; PEFT's scale, rsLoRA and rank/alpha patterns included), so figures computed here
and by ``lorareg interference`` are the same cache entries. Only plain low-rank changes are
read: DoRA, modules_to_save and trained biases are refused (``UnsupportedAdapter``), as the
library refuses them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from registry.errors import InvalidAdapter, UnsupportedAdapter
from registry.formats.adapter import AdapterContents, AdapterFile, inspect_adapter
from registry.formats.lowrank import Array
from registry.formats.peft import WEIGHTS_NAME
from registry.formats.safetensors import TensorInfo

SAVE_PREFIX = "base_model.model."
_LORA = re.compile(r"\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(\.weight)?$")
_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}


@dataclass(frozen=True)
class _Module:
    a: TensorInfo
    b: TensorInfo
    scale: float


class LoraFile:
    """One adapter's LoRA modules; ``factors(module)`` reads that module's two tensors."""

    def __init__(self, files: Mapping[str, AdapterFile], *, label: str) -> None:
        self.label = label
        contents = inspect_adapter(files)
        _check_plain(contents, label)
        self._weights = files[WEIGHTS_NAME]
        self._offset = contents.header.data_offset
        tensors = contents.header.tensors
        self.modules: dict[str, _Module] = {}
        for saved, mod in contents.modules.items():
            kinds = (
                ("lora_embedding_A", "lora_embedding_B") if mod.embedding else ("lora_A", "lora_B")
            )
            keys = [
                f"{saved}.{k}.weight" if f"{saved}.{k}.weight" in tensors else f"{saved}.{k}"
                for k in kinds
            ]
            name = saved[len(SAVE_PREFIX) :] if saved.startswith(SAVE_PREFIX) else saved
            a, b = tensors[keys[0]], tensors[keys[1]]
            if len(a.shape) != 2 or len(b.shape) != 2:
                raise UnsupportedAdapter(
                    f"adapter {label}: {saved} has {len(a.shape)}-D LoRA factors (convolution"
                    " LoRA), which the library does not compare"
                )
            self.modules[name] = _Module(a, b, contents.config.scaling(name))

    def shape(self, module: str) -> tuple[int, int]:
        """(d_out, d_in) of a module's change."""
        m = self.modules[module]
        return int(m.b.shape[0]), int(m.a.shape[1])

    def factors(self, module: str) -> tuple[Array, Array]:
        """``(scale * B, A)`` of one module, float32."""
        m = self.modules[module]
        return self._read(m.b) * np.float32(m.scale), self._read(m.a)

    def _read(self, info: TensorInfo) -> Array:
        raw = self._weights.read(self._offset + info.start, info.end - info.start)
        if len(raw) != info.end - info.start:
            raise InvalidAdapter(f"adapter {self.label}: {info.name} is cut short")
        if info.dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            values = bits.view(np.float32)
        elif info.dtype in _NUMPY:
            values = np.frombuffer(raw, dtype=_NUMPY[info.dtype]).astype(np.float32)
        else:
            raise InvalidAdapter(f"adapter {self.label}: {info.name} is {info.dtype}, not a float")
        return values.reshape(info.shape)


def _check_plain(contents: AdapterContents, label: str) -> None:
    if contents.config.use_dora:
        raise UnsupportedAdapter(
            f"adapter {label} is DoRA: its change rescales rows by a norm of the merged weight,"
            " which is not a low-rank delta, so its interference is not defined exactly"
        )
    for key in contents.header.tensors:
        if not _LORA.search(key):
            raise UnsupportedAdapter(
                f"adapter {label} holds {key}, which is not a LoRA factor (modules_to_save,"
                " a trained bias or a DoRA magnitude): not a low-rank delta"
            )
