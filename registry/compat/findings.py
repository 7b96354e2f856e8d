"""What a compatibility check reports: findings, per-engine verdicts and the whole report.

Everything here is plain data with a stable JSON form (``to_json``), so the catalog can
store a report with an adapter version and the API can return it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad a finding is. ``info`` never changes a verdict; ``fail`` always does."""

    PASS = "pass"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.PASS: 0, Severity.INFO: 0, Severity.WARN: 1, Severity.FAIL: 2}


def worst(severities: list[Severity]) -> Severity:
    """The verdict for a set of findings: fail > warn > pass (info counts as pass)."""
    verdict = Severity.PASS
    for s in severities:
        if s.rank > verdict.rank:
            verdict = s
    return verdict


@dataclass(frozen=True)
class Finding:
    """One result of one rule: a stable ``code``, what is wrong and what to do about it.

    ``module`` names the adapted module (without PEFT's ``base_model.model.`` prefix) when
    the finding is about one; ``engine`` is set for findings from a serving-engine profile.
    """

    code: str
    severity: Severity
    message: str
    hint: str = ""
    module: str | None = None
    engine: str | None = None

    def line(self) -> str:
        """One human line: ``FAIL shapes.in_features model.layers.0.q_proj: ... (hint)``."""
        where = f" {self.module}" if self.module else ""
        hint = f" -> {self.hint}" if self.hint else ""
        return f"{self.severity.value.upper():4} {self.code}{where}: {self.message}{hint}"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "module": self.module,
            "engine": self.engine,
            "message": self.message,
            "hint": self.hint,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Finding:
        return cls(
            code=doc["code"],
            severity=Severity(doc["severity"]),
            message=doc["message"],
            hint=doc.get("hint", ""),
            module=doc.get("module"),
            engine=doc.get("engine"),
        )


@dataclass(frozen=True)
class EngineVerdict:
    """Whether one serving engine can serve the adapter, and with which settings.

    ``settings`` are the engine's command-line options to start it with (option -> value,
    ``None`` for a bare flag); ``summary`` is the one line a user reads, e.g.
    ``vLLM: start with --enable-lora --max-lora-rank 64``.
    """

    engine: str
    display_name: str
    verdict: Severity
    summary: str
    settings: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "display_name": self.display_name,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "settings": dict(self.settings),
            "findings": [f.to_json() for f in self.findings],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EngineVerdict:
        return cls(
            engine=doc["engine"],
            display_name=doc["display_name"],
            verdict=Severity(doc["verdict"]),
            summary=doc["summary"],
            settings=dict(doc.get("settings", {})),
            findings=[Finding.from_json(f) for f in doc.get("findings", [])],
        )


@dataclass(frozen=True)
class CheckReport:
    """The result of ``run_checks``.

    ``verdict`` is the worst severity over ``findings``, which hold every rule's result
    (a ``pass`` finding for each rule that found nothing) plus the findings of the
    engines that were asked for. ``engines`` holds a verdict for every known engine, asked
    for or not, so a reader can see where else the adapter would run. ``norms`` maps each
    adapted module to its Frobenius norms (``a``, ``b``, ``delta`` = ||scale * B @ A||)
    when tensor data was available.
    """

    verdict: Severity
    findings: list[Finding]
    engines: dict[str, EngineVerdict]
    requested_engines: list[str]
    norms: dict[str, dict[str, float]] = field(default_factory=dict)
    base_fingerprint: dict[str, str | None] | None = None

    def problems(self) -> list[Finding]:
        """Findings that are warnings or failures, worst first."""
        bad = [f for f in self.findings if f.severity in (Severity.WARN, Severity.FAIL)]
        return sorted(bad, key=lambda f: -f.severity.rank)

    def codes(self, *severities: Severity) -> set[str]:
        """The codes of the findings with the given severities (default: warn and fail)."""
        wanted = severities or (Severity.WARN, Severity.FAIL)
        return {f.code for f in self.findings if f.severity in wanted}

    def lines(self) -> list[str]:
        """What ``lorareg check`` prints: the verdict, each problem, then each engine."""
        out = [f"verdict: {self.verdict.value}"]
        out += [f.line() for f in self.problems()]
        out += [f"{e.verdict.value.upper():4} {e.summary}" for e in self.engines.values()]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "findings": [f.to_json() for f in self.findings],
            "engines": {k: v.to_json() for k, v in self.engines.items()},
            "requested_engines": list(self.requested_engines),
            "norms": {k: dict(v) for k, v in self.norms.items()},
            "base_fingerprint": self.base_fingerprint,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CheckReport:
        return cls(
            verdict=Severity(doc["verdict"]),
            findings=[Finding.from_json(f) for f in doc["findings"]],
            engines={k: EngineVerdict.from_json(v) for k, v in doc["engines"].items()},
            requested_engines=list(doc.get("requested_engines", [])),
            norms={k: dict(v) for k, v in doc.get("norms", {}).items()},
            base_fingerprint=doc.get("base_fingerprint"),
        )
