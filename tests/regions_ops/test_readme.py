"""The README's "Regions" session, run on the real CLI like the other README sessions: the
settings are the ``export`` lines of the section's first ```sh block (folders under the
session's own directory instead of /tmp/tour), the commands those of its ```console block.
``python -m tests.regions_ops.test_readme`` prints what the session prints today."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

from tests.cli.readme_sessions import (
    README,
    README_CWD,
    Step,
    console_block,
    inside,
    normalise,
    run_step,
)

SECTION = "Regions"


def settings_of(cwd: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines of the section's first ```sh block."""
    text = README.read_text()
    start = text.index(f"\n## {SECTION}\n")
    block = text[text.index("```sh\n", start) + len("```sh\n") :]
    block = block[: block.index("```")]
    env = {}
    for line in block.splitlines():
        found = re.match(r"export (LORAREG_\w+)=(.*?)(\s+#.*)?$", line.strip())
        if found:
            value = shlex.split(found.group(2))[0]
            env[found.group(1)] = value.replace(README_CWD, str(cwd))
    return env


def run(cwd: Path, adapter: Path) -> list[tuple[Step, list[str]]]:
    shutil.copytree(adapter, cwd / "brand-voice")
    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith("LORAREG_") or k.startswith("HF_")
    }
    env.update(
        {
            "LORAREG_HOME": str(cwd / ".lorareg"),
            "LORAREG_CACHE_DIR": str(cwd / ".cache"),
            "LORAREG_AUTHOR": "alice",
            **settings_of(cwd),
        }
    )
    with inside(cwd):
        return [(step, run_step(step, env)) for step in console_block(SECTION)]


def test_the_regions_session(adapter_library: dict[str, Path], tmp_path: Path) -> None:
    env = settings_of(tmp_path)
    assert {"LORAREG_REGIONS", "LORAREG_PRIMARY_REGION"} <= set(env)
    results = run(tmp_path, adapter_library["v1"])
    assert [s.command.split()[1] for s, _ in results][:2] == ["push", "regions"]
    for step, shown in results:
        want = normalise(step.expected, Path("/nonexistent"))
        got = normalise(shown, tmp_path)
        assert got == want, (
            f"$ {step.command}\nREADME:\n" + "\n".join(want) + "\nnow:\n" + "\n".join(got)
        )
