"""The README's sessions are run on the real CLI, doctest-style, so they cannot drift: each
``$ lorareg ...`` line runs in a fresh embedded registry (SQLite and a local folder, as
the README says) and must print what the README shows, hashes, times, ages and sizes
aside. ``python -m tests.cli.readme_sessions`` prints today's output after a change."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.readme_sessions import (
    console_block,
    lay_out_lifecycle,
    lay_out_tour,
    normalise,
    run_session,
)


def check(results: list, cwd: Path) -> None:  # type: ignore[type-arg]
    assert results, "no session found in the README"
    for step, shown in results:
        want = normalise(step.expected, Path("/nonexistent"))
        got = normalise(shown, cwd)
        assert got == want, (
            f"$ {step.command}\nREADME:\n" + "\n".join(want) + "\nnow:\n" + "\n".join(got)
        )


def test_the_five_minute_tour(adapter_library: dict[str, Path], tmp_path: Path) -> None:
    steps = console_block("A five-minute tour")
    assert [s.command.split()[1] for s in steps][:3] == ["push", "push", "push"]
    check(run_session(steps, tmp_path, before=lay_out_tour(tmp_path, adapter_library)), tmp_path)


def test_the_lifecycle_session(
    adapter_library: dict[str, Path], base_library: dict[str, Path], tmp_path: Path
) -> None:
    steps = console_block("Lifecycle, checks, merges")
    pushed = {s.command.split()[3] for s in steps if s.command.startswith("lorareg push")}
    merged = next(s for s in steps if s.command.startswith("lorareg merge")).command.split()[2]
    # Every adapter the session merges was pushed earlier in it.
    assert {ref.split(":")[0] for ref in merged.split(",")} <= pushed
    lay_out_lifecycle(tmp_path, adapter_library, base_library)
    check(run_session(steps, tmp_path), tmp_path)


def test_a_drifted_readme_fails(adapter_library: dict[str, Path], tmp_path: Path) -> None:
    """The comparison can fail: a changed word in a promised line is caught."""
    steps = console_block("A five-minute tour")[:1]
    steps[0].expected = [line.replace("pushed", "stored") for line in steps[0].expected]
    with pytest.raises(AssertionError, match="stored acme/brand-voice:1"):
        check(
            run_session(steps, tmp_path, before=lay_out_tour(tmp_path, adapter_library)), tmp_path
        )
