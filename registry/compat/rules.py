"""The rule machinery: a rule is a small named function with a stable code.

A rule receives a ``CheckContext`` and yields findings; a rule that yields nothing has
passed. ``needs`` says what input it requires beyond the adapter itself (``base``: a
registered base model; ``data``: a tensor loader; ``fingerprint``: the fingerprint of the
base the adapter was trained on); a rule whose input is missing is skipped and reported
as ``info``. Rules live in the ``rules_*`` modules and register with ``@rule``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from registry.compat.adapter_layout import (
    AdapterLayout,
    Resolution,
    adapter_layout,
    resolve_modules,
    strip_prefix,
)
from registry.compat.findings import Finding, Severity
from registry.compat.fingerprint import BaseFingerprint, BaseModelInfo
from registry.formats.peft import PeftConfig
from registry.formats.safetensors import SafetensorsHeader

TensorLoader = Callable[[str], Any]
"""``load(tensor_key) -> numpy.ndarray``: the data of one adapter tensor, by its key in
``adapter_model.safetensors`` (see ``registry.compat.tensors.tensor_loader``)."""


@dataclass
class CheckContext:
    """Everything a rule may look at; derived views are computed once, on first use."""

    config: PeftConfig
    header: SafetensorsHeader
    base: BaseModelInfo | None = None
    trained_on: BaseFingerprint | None = None
    load_tensor: TensorLoader | None = None
    norms: dict[str, dict[str, float]] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def layout(self) -> AdapterLayout:
        return adapter_layout(self.config, self.header)

    @cached_property
    def resolution(self) -> Resolution:
        assert self.base is not None, "rules that resolve names declare needs={'base'}"
        return resolve_modules(sorted(self.layout.pairs), self.base)

    def rank_for(self, module: str) -> int:
        """The rank PEFT gives ``module`` (rank_pattern wins over r)."""
        return self.config.effective_rank(strip_prefix(module))

    def finding(
        self,
        code: str,
        severity: Severity,
        message: str,
        hint: str = "",
        module: str | None = None,
    ) -> Finding:
        return Finding(code=code, severity=severity, message=message, hint=hint, module=module)


RuleFunc = Callable[[CheckContext], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    code: str
    title: str
    needs: frozenset[str]
    run: RuleFunc


RULES: list[Rule] = []


def rule(code: str, title: str, *, needs: Iterable[str] = ()) -> Callable[[RuleFunc], RuleFunc]:
    """Register a rule under ``code``; every finding it yields should carry that code."""

    def register(func: RuleFunc) -> RuleFunc:
        if any(r.code == code for r in RULES):
            raise RuntimeError(f"rule code {code!r} registered twice")
        RULES.append(Rule(code=code, title=title, needs=frozenset(needs), run=func))
        return func

    return register
