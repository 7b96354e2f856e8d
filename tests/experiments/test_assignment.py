"""Assignment is a pure, documented function: golden vectors, even splits, sticky ramps."""

from __future__ import annotations

import hashlib
import random

import pytest

from registry import errors
from registry.experiments.assignment import (
    BUCKETS,
    BucketRange,
    assign,
    bucket_of,
    initial_ranges,
    parse_split,
    ramp_ranges,
    variant_for_bucket,
)

VARIANTS = ["control", "warm", "formal"]

# The README's table: a router in another language must reproduce these exactly.
GOLDEN = [
    ("5f2a9c0e1b7d4a33", "client-1234", 558),
    ("5f2a9c0e1b7d4a33", "client-1235", 2132),
    ("5f2a9c0e1b7d4a33", "user@example.com", 2787),
    ("tone-test", "é-42", 6483),
]


@pytest.mark.parametrize(("salt", "subject", "bucket"), GOLDEN)
def test_golden_vectors(salt: str, subject: str, bucket: int) -> None:
    assert bucket_of(salt, subject) == bucket
    # The documented recipe, spelled out independently of the implementation.
    digest = hashlib.sha256((salt + ":" + subject).encode("utf-8")).hexdigest()
    assert int(digest[:16], 16) % 10000 == bucket


def test_golden_assignment_with_the_readme_split() -> None:
    ranges = initial_ranges(parse_split("80,10,10", VARIANTS))
    assert [r.as_list() for r in ranges] == [
        [0, 8000, "control"],
        [8000, 9000, "warm"],
        [9000, 10000, "formal"],
    ]
    assert assign("5f2a9c0e1b7d4a33", "client-1234", ranges) == "control"  # bucket 558
    assert variant_for_bucket(8000, ranges) == "warm"
    assert variant_for_bucket(9999, ranges) == "formal"


def test_split_parsing_refuses_bad_shares() -> None:
    assert parse_split("33.34,33.33,33.33", VARIANTS) == {
        "control": 3334,
        "warm": 3333,
        "formal": 3333,
    }
    for bad in ("80,10", "80,10,5", "80,10,10.001", "80,-10,30", "80,x,10", "80,10,nan"):
        with pytest.raises(errors.InvalidSplit):
            parse_split(bad, VARIANTS)


@pytest.mark.parametrize(
    "subject", ["", "x" * 257, "é" * 129, "a\nb", "tab\there", "\x7f", "\u0085"]
)
def test_bad_subjects_are_refused(subject: str) -> None:
    with pytest.raises(errors.InvalidSubject):
        assign("salt", subject, initial_ranges({"a": BUCKETS}))


def test_ramp_keeps_every_subject_whose_variant_grows() -> None:
    ranges = initial_ranges(parse_split("90,10,0", VARIANTS))
    subjects = [f"s-{i}" for i in range(20_000)]
    before = {s: assign("ramp-salt", s, ranges) for s in subjects}
    for split in ("75,15,10", "50,25,25", "34,33,33"):
        new = ramp_ranges(ranges, parse_split(split, VARIANTS))
        assert sum(r.end - r.start for r in new) == BUCKETS
        after = {s: assign("ramp-salt", s, new) for s in subjects}
        for s in subjects:
            # Treatments only grow here: nobody leaves them; control only loses subjects.
            if before[s] != "control":
                assert after[s] == before[s], (split, s)
        moved = sum(before[s] != after[s] for s in subjects)
        shrink = (
            sum(r.end - r.start for r in ranges if r.variant == "control")
            - sum(r.end - r.start for r in new if r.variant == "control")
        ) / BUCKETS
        # Only the control's surrendered share moves (within sampling noise).
        assert abs(moved / len(subjects) - shrink) < 0.02
        ranges, before = new, after


def test_ramp_back_and_forth_moves_the_minimum_of_buckets() -> None:
    rng = random.Random(7)
    ranges = initial_ranges(parse_split("80,10,10", VARIANTS))
    for _ in range(200):
        a = rng.randint(0, 100)
        b = rng.randint(0, 100 - a)
        counts = dict(zip(VARIANTS, (a * 100, b * 100, (100 - a - b) * 100), strict=True))
        new = ramp_ranges(ranges, counts)
        owner_old = _owners(ranges)
        owner_new = _owners(new)
        kept = sum(o == n for o, n in zip(owner_old, owner_new, strict=True))
        best = sum(min(owner_old.count(v), owner_new.count(v)) for v in VARIANTS)
        assert kept == best  # every variant keeps min(old, new) of its buckets
        assert {v: owner_new.count(v) for v in VARIANTS} == counts
        ranges = new


def _owners(ranges: list[BucketRange]) -> list[str]:
    return [variant_for_bucket(b, ranges) for b in range(BUCKETS)]


def test_the_readme_table_holds_the_same_golden_vectors() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## A/B experiments") :]
    rows = re.findall(r"^\| `([^`]*)` \| `([^`]*)` \| (\d+) \|$", section, re.M)
    assert len(rows) == len(GOLDEN)
    for salt, subject, bucket in rows:
        assert bucket_of(salt, subject) == int(bucket)
