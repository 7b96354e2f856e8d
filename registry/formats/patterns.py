"""PEFT's module-name regexes, matched with bounds.

An ``adapter_config.json`` comes from whoever pushes it. PEFT reads three of its fields as
regexes: a ``target_modules`` string, an ``exclude_modules`` string, and the keys of
``rank_pattern`` / ``alpha_pattern``. Python's ``re`` has no time limit, so a pattern like
``(a+)+$`` would hold a server thread for minutes on one module name. lorareg therefore
refuses patterns longer than ``MAX_PATTERN_CHARS`` or that do not compile (at parse time),
and matches with the ``regex`` engine's timeout: a pattern that takes longer than
``MATCH_TIMEOUT_S`` on a module name is refused as InvalidAdapter, never waited for.
``regex`` (in its default VERSION0 mode) matches what ``re`` matches for PEFT's patterns.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NoReturn

import regex

from registry.errors import InvalidAdapter

MAX_PATTERN_CHARS = 512
# Real patterns match a module name in microseconds; a pathological one gets this long.
MATCH_TIMEOUT_S = 0.05


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> regex.Pattern[str]:
    """The compiled pattern, or InvalidAdapter saying why it cannot be one."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidAdapter(
            f"module pattern {pattern[:40]!r}... is {len(pattern)} characters;"
            f" at most {MAX_PATTERN_CHARS} are accepted: list module names instead"
        )
    try:
        return regex.compile(pattern)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise InvalidAdapter(
            f"module pattern {pattern[:80]!r} is not a valid regex ({exc}); fix it in"
            " adapter_config.json"
        ) from None


def _too_slow(pattern: str, name: str) -> NoReturn:
    raise InvalidAdapter(
        f"module pattern {pattern[:80]!r} took over {MATCH_TIMEOUT_S}s to match {name[:80]!r}"
        " (catastrophic backtracking); simplify it or list module names"
    )


def fullmatch(pattern: str, name: str) -> bool:
    """``re.fullmatch(pattern, name) is not None``, bounded."""
    try:
        return compiled(pattern).fullmatch(name, timeout=MATCH_TIMEOUT_S) is not None
    except TimeoutError:
        _too_slow(pattern, name)


def suffix_key_pattern(key: str) -> str:
    return rf"(.*\.)?({key})$"


def suffix_key_matches(key: str, name: str) -> bool:
    """PEFT's pattern-key rule (``peft.utils.other.get_pattern_key``): ``key`` matches the
    whole of ``name`` or a ``.``-separated suffix of it."""
    pattern = suffix_key_pattern(key)
    try:
        return compiled(pattern).match(name, timeout=MATCH_TIMEOUT_S) is not None
    except TimeoutError:
        _too_slow(key, name)


def check_pattern(pattern: str) -> None:
    """InvalidAdapter now, at parse time, for a pattern that is too long or does not compile."""
    compiled(pattern)
