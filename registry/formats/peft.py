"""PEFT's adapter_config.json as a typed config; unknown keys are kept, never dropped."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from registry.errors import InvalidAdapter
from registry.formats.patterns import check_pattern, suffix_key_matches, suffix_key_pattern

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


class PeftConfig(BaseModel):
    """The fields of a LoRA adapter_config.json that lorareg reasons about.

    ``model_extra`` holds every other key exactly as written, so re-serialising loses nothing.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    peft_type: str = "LORA"
    r: int
    lora_alpha: float
    target_modules: list[str] | str | None
    use_rslora: bool = False
    use_dora: bool = False
    rank_pattern: dict[str, int] = {}
    alpha_pattern: dict[str, float] = {}
    fan_in_fan_out: bool = False
    modules_to_save: list[str] | None = None
    bias: str = "none"
    base_model_name_or_path: str | None = None
    revision: str | None = None
    task_type: str | None = None

    @field_validator("r")
    @classmethod
    def _positive_rank(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be a positive integer")
        return v

    @field_validator("rank_pattern", "alpha_pattern", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v

    def effective_rank(self, module: str) -> int:
        """The rank PEFT uses for ``module`` (rank_pattern wins over r)."""
        key = pattern_key(self.rank_pattern, module)
        return self.rank_pattern[key] if key is not None else self.r

    def effective_alpha(self, module: str) -> float:
        key = pattern_key(self.alpha_pattern, module)
        return self.alpha_pattern[key] if key is not None else self.lora_alpha

    def scaling(self, module: str) -> float:
        """PEFT's scale for a module: alpha / r, or alpha / sqrt(r) under rsLoRA."""
        r = self.effective_rank(module)
        alpha = self.effective_alpha(module)
        return alpha / (r**0.5) if self.use_rslora else alpha / r

    def target_list(self) -> list[str]:
        if self.target_modules is None:
            return []
        if isinstance(self.target_modules, str):
            return [self.target_modules]
        return list(self.target_modules)

    def summary(self) -> dict[str, Any]:
        return {
            "peft_type": self.peft_type,
            "r": self.r,
            "lora_alpha": self.lora_alpha,
            "target_modules": self.target_modules,
            "use_rslora": self.use_rslora,
            "use_dora": self.use_dora,
            "has_rank_pattern": bool(self.rank_pattern),
            "has_alpha_pattern": bool(self.alpha_pattern),
            "fan_in_fan_out": self.fan_in_fan_out,
            "modules_to_save": self.modules_to_save,
            "bias": self.bias,
            "task_type": self.task_type,
        }

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def pattern_key(patterns: dict[str, Any], module: str) -> str | None:
    """PEFT's pattern matching: a key matches a module name ending in ``.key`` or equal to it.

    Mirrors ``peft.utils.other.get_pattern_key``: the first key (in dict order) whose regex
    matches the whole name, or a ``.``-separated suffix of it.
    """
    for key in patterns:
        if suffix_key_matches(key, module):
            return key
    return None


def parse_config(raw: bytes, *, name: str = CONFIG_NAME) -> PeftConfig:
    """Parse adapter_config.json bytes; every problem becomes one InvalidAdapter line."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidAdapter(f"{name} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidAdapter(f"{name} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidAdapter(f"{name} is nested too deeply to be a config") from None
    if not isinstance(doc, dict):
        raise InvalidAdapter(f"{name} must hold a JSON object")
    peft_type = doc.get("peft_type", "LORA")
    if not isinstance(peft_type, str) or peft_type.upper() != "LORA":
        # Name the method first: its own fields (VeRA, LoHa, ...) are not LoRA's.
        raise InvalidAdapter(
            f"{name}: peft_type is {str(peft_type)[:40]!r}; lorareg handles LoRA adapters"
            " (peft_type LORA) only"
        )
    try:
        cfg = PeftConfig.model_validate(doc, strict=False)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {_describe(e)}"
            for e in exc.errors()
        )
        raise InvalidAdapter(
            f"{name} is not a valid LoRA config ({problems}); fix the field and push again"
        ) from None
    # pydantic would coerce "8" to 8 or 8.0 to 8; PEFT itself would not, so neither do we.
    for key, kinds in (("r", (int,)), ("lora_alpha", (int, float))):
        v = doc.get(key)
        if isinstance(v, bool) or not isinstance(v, kinds):
            raise InvalidAdapter(f"{name}: {key} must be a number, got {type(v).__name__} {v!r}")
    tm = doc.get("target_modules")
    if not (isinstance(tm, str) or (isinstance(tm, list) and all(isinstance(t, str) for t in tm))):
        raise InvalidAdapter(
            f"{name}: target_modules must be a list of module names or a regex string, got {tm!r}"
        )
    _check_patterns(cfg)
    return cfg


def _check_patterns(cfg: PeftConfig) -> None:
    """Refuse, before any matching, a module regex that is too long or does not compile."""
    regexes = [suffix_key_pattern(key) for key in (*cfg.rank_pattern, *cfg.alpha_pattern)]
    for rx in (cfg.target_modules, (cfg.model_extra or {}).get("exclude_modules")):
        if isinstance(rx, str):
            regexes.append(rx)
    for rx in regexes:
        check_pattern(rx)


def _describe(err: Any) -> str:
    if err.get("type") == "missing":
        return "required field is missing"
    return str(err.get("msg", "invalid"))
