"""Which variant a subject gets: a pure function of (salt, subject id, bucket ranges).

The rule, so a router in any language reproduces it bit for bit:

1. ``digest = sha256(utf8(salt + ":" + subject))``
2. ``bucket = int.from_bytes(digest[0:8], "big") % 10000`` (0..9999)
3. the variant is the one whose range ``[start, end)`` holds the bucket.

A split is given in percent with at most two decimals (one bucket is 0.01 %). A new
experiment lays the variants out as contiguous ranges in their declared order. A ramp
keeps every subject it can: a variant whose share grows keeps all its buckets and takes
buckets the shrinking variants gave up; a shrinking variant keeps its lowest buckets. So
a subject in ``warm`` at 10 % is still in ``warm`` at 25 %.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from registry.errors import InvalidSplit, InvalidSubject

BUCKETS = 10_000
MAX_SUBJECT_BYTES = 256


@dataclass(frozen=True)
class BucketRange:
    start: int  # inclusive
    end: int  # exclusive
    variant: str

    def as_list(self) -> list[object]:
        return [self.start, self.end, self.variant]


def check_subject(subject: str) -> str:
    """The subject id as given, or InvalidSubject."""
    if not subject:
        raise InvalidSubject("the subject id is empty; pass the id you bucket users by")
    if len(subject.encode("utf-8", errors="surrogatepass")) > MAX_SUBJECT_BYTES:
        raise InvalidSubject(f"the subject id is over {MAX_SUBJECT_BYTES} bytes; hash it first")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in subject):
        raise InvalidSubject("the subject id holds control characters; send printable text")
    try:
        subject.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSubject("the subject id is not valid Unicode text") from None
    return subject


def bucket_of(salt: str, subject: str) -> int:
    """The subject's bucket in 0..9999 (step 1 and 2 of the module rule)."""
    digest = hashlib.sha256(f"{salt}:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def variant_for_bucket(bucket: int, ranges: Sequence[BucketRange]) -> str:
    for r in ranges:
        if r.start <= bucket < r.end:
            return r.variant
    raise ValueError(f"bucket {bucket} is outside every range")  # ranges always cover 0..9999


def assign(salt: str, subject: str, ranges: Sequence[BucketRange]) -> str:
    """The variant ``subject`` gets (the subject is checked first)."""
    return variant_for_bucket(bucket_of(salt, check_subject(subject)), ranges)


def parse_split(text: str | Sequence[object], variants: Sequence[str]) -> dict[str, int]:
    """``"80,10,10"`` (or a list of numbers) -> buckets per variant, in declared order."""
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    if len(parts) != len(variants):
        raise InvalidSplit(
            f"the split has {len(parts)} shares for {len(variants)} variants"
            f" ({', '.join(variants)}); give one percentage per variant, e.g. 80,10,10"
        )
    counts: dict[str, int] = {}
    for variant, part in zip(variants, parts, strict=True):
        try:
            pct = Decimal(str(part))
        except InvalidOperation:
            raise InvalidSplit(f"{part!r} is not a percentage") from None
        if not pct.is_finite() or pct < 0 or pct > 100:
            raise InvalidSplit(f"{part!r} is not a percentage between 0 and 100")
        buckets = pct * 100
        if buckets != buckets.to_integral_value():
            raise InvalidSplit(f"{part!r} has more than two decimals (one bucket is 0.01 %)")
        counts[variant] = int(buckets)
    total = sum(counts.values())
    if total != BUCKETS:
        raise InvalidSplit(
            f"the split adds up to {Decimal(total) / 100:g} %, not 100 %; e.g. 80,10,10"
        )
    return counts


def split_percent(ranges: Sequence[BucketRange], variants: Sequence[str]) -> dict[str, float]:
    """Each variant's share in percent."""
    counts = {v: 0 for v in variants}
    for r in ranges:
        counts[r.variant] += r.end - r.start
    return {v: c / 100 for v, c in counts.items()}


def initial_ranges(counts: Mapping[str, int]) -> list[BucketRange]:
    """Contiguous ranges in declared order (variants with 0 % get none)."""
    out, start = [], 0
    for variant, n in counts.items():
        if n:
            out.append(BucketRange(start, start + n, variant))
            start += n
    return out


def ramp_ranges(old: Sequence[BucketRange], counts: Mapping[str, int]) -> list[BucketRange]:
    """New ranges for ``counts`` that move as few buckets as possible (see module doc)."""
    kept: list[BucketRange] = []
    freed: list[tuple[int, int]] = []
    have = {v: 0 for v in counts}
    for r in sorted(old, key=lambda r: r.start):
        room = counts.get(r.variant, 0) - have.get(r.variant, 0)
        take = max(0, min(room, r.end - r.start))
        if take:
            kept.append(BucketRange(r.start, r.start + take, r.variant))
            have[r.variant] = have.get(r.variant, 0) + take
        if take < r.end - r.start:
            freed.append((r.start + take, r.end))
    pool = sorted(freed)
    for variant, want in counts.items():
        need = want - have.get(variant, 0)
        while need > 0:
            start, end = pool.pop(0)
            take = min(need, end - start)
            kept.append(BucketRange(start, start + take, variant))
            need -= take
            if start + take < end:
                pool.insert(0, (start + take, end))
    return _merged(kept)


def _merged(ranges: list[BucketRange]) -> list[BucketRange]:
    out: list[BucketRange] = []
    for r in sorted(ranges, key=lambda r: r.start):
        if out and out[-1].variant == r.variant and out[-1].end == r.start:
            out[-1] = BucketRange(out[-1].start, r.end, r.variant)
        else:
            out.append(r)
    return out


def ranges_from_rows(rows: Sequence[Sequence[object]]) -> list[BucketRange]:
    return [BucketRange(int(str(a)), int(str(b)), str(v)) for a, b, v in rows]
