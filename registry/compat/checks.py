"""Run every compatibility rule on an adapter, optionally against a base, and judge engines.

    report = run_checks(contents.config, contents.header, base=base_info,
                        trained_on=version_fingerprint, load_tensor=loader,
                        engines=["vllm"])
    report.verdict            # pass / warn / fail
    report.lines()            # what `lorareg check` prints
    report.to_json()          # what the catalog stores and the API returns

Rules are listed in ``rules_schema``, ``rules_tensors``, ``rules_base``, ``rules_shapes``
and ``rules_numbers``; ``RULE_CODES`` lists their codes, ``engines.ENGINES`` the engines.
"""

from __future__ import annotations

from collections.abc import Sequence

from registry.compat import (  # noqa: F401  (importing registers the rules)
    rules_base,
    rules_numbers,
    rules_schema,
    rules_shapes,
    rules_tensors,
)
from registry.compat.engines import ENGINES, get_engine
from registry.compat.findings import CheckReport, EngineVerdict, Finding, Severity, worst
from registry.compat.fingerprint import BaseFingerprint, BaseModelInfo
from registry.compat.rules import RULES, CheckContext, TensorLoader
from registry.formats.peft import PeftConfig
from registry.formats.safetensors import SafetensorsHeader

# Report order: the adapter alone, then against the base, then its numbers.
_GROUPS = ("schema", "tensors", "names", "shapes", "base", "numbers")
ORDERED_RULES = sorted(RULES, key=lambda r: _GROUPS.index(r.code.split(".")[0]))
RULE_CODES: tuple[str, ...] = tuple(r.code for r in ORDERED_RULES)

_MISSING = {
    "base": ("checks.base_skipped", "no base model given: names, shapes and identity not checked",
             "pass --base NAME (register it with `lorareg base add`)"),
    "fingerprint": ("checks.identity_skipped", "the adapter records no base fingerprint:"
                    " base identity not checked", "push the adapter with --base NAME"),
    "data": ("checks.numbers_skipped", "no tensor data: finiteness and norms not checked",
             "run the check where the adapter's weights can be read"),
}  # fmt: skip


def run_checks(
    config: PeftConfig,
    header: SafetensorsHeader,
    *,
    base: BaseModelInfo | None = None,
    trained_on: BaseFingerprint | None = None,
    load_tensor: TensorLoader | None = None,
    engines: Sequence[str] | None = None,
) -> CheckReport:
    """Check an adapter's config and tensors, against ``base`` when given.

    ``trained_on`` is the fingerprint of the base the adapter was trained on (recorded at
    push); ``load_tensor`` loads one tensor by key for the numbers rules. ``engines`` names
    the engines the caller will serve with: their findings join the report's findings and
    verdict. Every known engine gets a verdict in ``report.engines`` either way. Raises
    UnknownEngine for an engine name without a profile.
    """
    wanted = [get_engine(name).name for name in engines or []]
    ctx = CheckContext(
        config=config, header=header, base=base, trained_on=trained_on, load_tensor=load_tensor
    )
    have = {
        "base": base is not None,
        "fingerprint": trained_on is not None,
        "data": load_tensor is not None,
    }
    findings: list[Finding] = []
    skipped: set[str] = set()
    for r in ORDERED_RULES:
        missing = sorted(n for n in r.needs if not have[n])
        if missing:
            skipped.update(missing)
            continue
        produced = list(r.run(ctx))
        findings += produced or [Finding(r.code, Severity.PASS, f"{r.title}: ok")]
    for need in sorted(skipped):
        code, message, hint = _MISSING[need]
        findings.append(Finding(code, Severity.INFO, message, hint))
    core = worst([f.severity for f in findings])
    verdicts = {name: _judge(name, ctx, core) for name in ENGINES}
    for name in wanted:
        findings += verdicts[name].findings
    return CheckReport(
        verdict=worst([f.severity for f in findings]),
        findings=findings,
        engines=verdicts,
        requested_engines=wanted,
        norms=dict(ctx.norms),
        base_fingerprint=base.fingerprint().to_json() if base else None,
    )


def _judge(name: str, ctx: CheckContext, core: Severity) -> EngineVerdict:
    profile = ENGINES[name]
    assessment = profile.assess(ctx)
    verdict = worst([core, *(f.severity for f in assessment.findings)])
    refusals = [
        f.message.split(": ", 1)[-1] for f in assessment.findings if f.severity == Severity.FAIL
    ]
    if refusals:
        summary = f"{profile.display_name}: cannot serve it: {'; '.join(refusals)}"
    elif core == Severity.FAIL:
        summary = f"{profile.display_name}: cannot serve it until the failures above are fixed"
    else:
        summary = f"{profile.display_name}: {assessment.start}"
    return EngineVerdict(
        engine=name,
        display_name=profile.display_name,
        verdict=verdict,
        summary=summary,
        settings=assessment.settings if verdict != Severity.FAIL else {},
        findings=assessment.findings,
    )
