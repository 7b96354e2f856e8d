"""The README's console sessions, run on the real CLI: parse a ```console block into
commands and the output they promise, run each in a fresh embedded registry, and compare
after normalising what varies between runs (hashes, times, ages, sizes, temp paths).

``python -m tests.cli.readme_sessions`` prints what the sessions print today, for pasting
into the README after a deliberate change.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner

from cli.main import cli

README = Path(__file__).resolve().parents[2] / "README.md"
# Where the README's sessions pretend to run; a test runs them in a temp folder instead.
README_CWD = "/tmp/tour"
# stderr progress of `merge --wait`: how many lines depends on timing.
PROGRESS = re.compile(r"^job \d+: (queued|running)\b")

_NORMALISE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b[0-9a-f]{12,64}\b"), "<hash>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?"), "<time>"),
    (re.compile(r"\b\d+[smhd] ago\b"), "<age>"),
    (re.compile(r"\b\d+(\.\d+)? (B|KB|MB|GB)\b"), "<size>"),
    (re.compile(r"\b\d+\.\ds\b"), "<secs>"),
    (re.compile(r"[-+]?\d\.\d+e[-+]\d+"), "<num>"),
]


@dataclass
class Step:
    command: str  # as written after "$ "
    expected: list[str] = field(default_factory=list)


def console_block(section: str, text: str | None = None) -> list[Step]:
    """The first ```console block under the ``## section`` heading."""
    text = README.read_text() if text is None else text
    start = text.index(f"\n## {section}\n")
    block = text[text.index("```console\n", start) + len("```console\n") :]
    block = block[: block.index("```")]
    steps: list[Step] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append(Step(line[2:]))
        elif line.strip() and steps:
            steps[-1].expected.append(line)
    return steps


def normalise(lines: list[str], cwd: Path) -> list[str]:
    out = []
    for line in lines:
        line = line.replace(str(cwd), README_CWD)
        for pattern, repl in _NORMALISE:
            line = pattern.sub(repl, line)
        out.append(" ".join(line.split()))
    return out


@contextmanager
def inside(folder: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run_step(step: Step, env: dict[str, str | None]) -> list[str]:
    """Run one ``lorareg ...`` line (with an optional ``; echo "exit $?"``) and return what
    a terminal shows: stdout, then stderr, then the echoed status."""
    command, _, comment = step.command.partition("  #")
    command, echo, _ = command.partition('; echo "exit $?"')
    argv = shlex.split(command)
    assert argv[0] == "lorareg", step.command
    r = CliRunner().invoke(cli, argv[1:], env=env, catch_exceptions=False)
    shown = r.stdout.splitlines() + [
        line for line in r.stderr.splitlines() if not PROGRESS.match(line)
    ]
    if echo:
        shown.append(f"exit {r.exit_code}")
    elif r.exit_code != 0:
        shown.append(f"(exit status {r.exit_code} without an echo in the README)")
    return shown


def run_session(
    steps: list[Step],
    cwd: Path,
    *,
    before: Callable[[Step], None] = lambda _: None,
) -> list[tuple[Step, list[str]]]:
    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith("LORAREG_") or k.startswith("HF_")
    }
    env.update(
        {
            "LORAREG_HOME": str(cwd / ".lorareg"),
            "LORAREG_CACHE_DIR": str(cwd / ".cache"),
            "LORAREG_AUTHOR": "alice",
        }
    )
    results = []
    with inside(cwd):
        for step in steps:
            before(step)
            results.append((step, run_step(step, env)))
    return results


def lay_out_tour(cwd: Path, adapters: dict[str, Path]) -> Callable[[Step], None]:
    """./brand-voice holds v1; the step marked "retrained weights" gets v2's files."""
    shutil.copytree(adapters["v1"], cwd / "brand-voice")

    def before(step: Step) -> None:
        if "retrained weights" in step.command:
            shutil.rmtree(cwd / "brand-voice")
            shutil.copytree(adapters["v2"], cwd / "brand-voice")

    return before


def lay_out_lifecycle(cwd: Path, adapters: dict[str, Path], bases: dict[str, Path]) -> None:
    shutil.copytree(bases["tiny"], cwd / "tiny-llama")
    shutil.copytree(adapters["v1"], cwd / "bv1")
    shutil.copytree(adapters["v2"], cwd / "bv2")
    shutil.copytree(adapters["r8"], cwd / "product")


def _print(results: list[tuple[Step, list[str]]]) -> None:
    for step, shown in results:
        print(f"$ {step.command}")
        for line in shown:
            print(line)


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    import tempfile

    from tests.factories import make_adapter, make_llama, save_base

    root = Path(tempfile.mkdtemp())
    adapters = {
        "v1": make_adapter(root / "a1", seed=1),
        "v2": make_adapter(root / "a2", seed=2),
        "r8": make_adapter(root / "a3", seed=3, r=8, lora_alpha=16),
    }
    bases = {"tiny": save_base(make_llama(), root / "base")}
    for section in sys.argv[1:] or ["A five-minute tour", "Lifecycle, checks, merges"]:
        cwd = Path(tempfile.mkdtemp())
        if section.startswith("A five"):
            _print(run_session(console_block(section), cwd, before=lay_out_tour(cwd, adapters)))
        else:
            lay_out_lifecycle(cwd, adapters, bases)
            _print(run_session(console_block(section), cwd))
