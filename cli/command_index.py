# ruff: noqa: E501  (a table of help lines, kept one command per line)
"""Which module defines each ``lorareg`` subcommand, and the first paragraph of its help.

``lorareg --help`` lists every command with a line of help; importing all twelve command
modules for it (pydantic, the domain models, the settings) cost a third of a second. The
group (``cli.app.LazyGroup``) imports a command's module only when that command runs, and
lists the commands from this index. ``tests/cli/test_command_index.py`` keeps it equal to the
commands themselves: add a command, add its line here.
"""

from __future__ import annotations

# name: (module under cli/commands, the first paragraph of the command's docstring)
COMMANDS: dict[str, tuple[str, str]] = {
    "alias": ("lifecycle", "Movable labels (champion, canary-b) on versions."),
    "analyze": (
        "library",
        "Singular values per module, effective rank, relative update, engine cost.",
    ),
    "base": ("compat", "Base models: tensors and fingerprints read from safetensors headers."),
    "check": (
        "compat",
        "Check REF against a base model (and engines); exit 1 when the verdict is fail.",
    ),
    "compose": (
        "library",
        "Compose REF,REF,... into one new adapter version (not merged into a base), as a job.",
    ),
    "compress": ("library", "Truncate REF optimally per module into a new version, and check it."),
    "db": ("server", "Catalog schema management."),
    "delete": (
        "namespaces",
        "Erase an adapter (every version) or one version, with its weights (admin).",
    ),
    "diff": ("lifecycle", "Config, targets and eval deltas of two versions side by side."),
    "eval": ("lifecycle", "Eval scores of versions."),
    "experiment": (
        "experiments",
        "A/B experiments between versions of an adapter: split traffic, read the result,\npromote the winner.",
    ),
    "fsck": (
        "upkeep",
        "Check the catalog against storage; exit 1 when a version's bytes are damaged.",
    ),
    "gc": ("upkeep", "Remove blobs no version references, once older than the grace period."),
    "history": (
        "catalog",
        "Every change to REPO (ns/name) or to a whole NAMESPACE: versions, tags, evals,\nstage and alias moves, policy changes.",
    ),
    "import": (
        "imports",
        "Download SOURCE from a Hugging Face Hub-compatible server and push it as REPO's next\nversion, with every check of `lorareg push`.",
    ),
    "interference": (
        "library",
        "How every pair of adapters overlaps: cosine of their deltas per shared module.",
    ),
    "jobs": ("merge", "Merge jobs: list; `jobs show ID`; `jobs cancel ID`."),
    "list": ("catalog", "List adapters, optionally in one NAMESPACE."),
    "merge": (
        "merge",
        "Merge REF[,REF...] into a base model; prints the interference report first.",
    ),
    "namespace": ("namespaces", "A namespace's usage and quota; offboarding a whole namespace."),
    "policy": ("lifecycle", "Promotion gates of a namespace or an adapter."),
    "promote": (
        "lifecycle",
        "Move REF to a stage, if the promotion policy allows it (rollback: promote an older one).",
    ),
    "pull": (
        "catalog",
        "Download REF (ns/name, ns/name:N, ns/name@label), verifying every sha256.",
    ),
    "push": ("catalog", "Store the PEFT adapter in FOLDER as the next version of REPO (ns/name)."),
    "regions": (
        "regions",
        "The regions this registry serves from, and whether each store answers.",
    ),
    "serve": (
        "server",
        "Run the API at /api/v1, the dashboard at /ui/ and, in embedded mode (SQLite), a\nmerge worker in this process (production runs `lorareg worker`s instead).",
    ),
    "show": ("catalog", "Show one version (or, for a bare ns/name, the newest) with its files."),
    "sync": (
        "sync",
        "Write the adapters in a stage (or alias) for one base model into a folder, one\nfolder per adapter at DIR/namespace/name, as vLLM's filesystem resolver, SGLang,\nLoRAX and PEFT load them; with --follow, apply every change within a second.",
    ),
    "tag": ("catalog", "Set tags on a version (KEY= with no value removes a tag)."),
    "token": ("lifecycle", "API tokens (admins)."),
    "webhook": ("lifecycle", "Signed webhooks fed from the event log (admins)."),
    "worker": (
        "server",
        "Claim and run merge jobs from the catalog until interrupted (SIGINT or SIGTERM);\nwith regions configured, also copy new blobs to the regional stores (and check the\nexternally replicated ones). Logs each claim, success, failure and the shutdown on\nstderr. With --metrics-port, serves Prometheus metrics (its jobs, the queue's depth\nand ages, region copies) on /metrics.",
    ),
}
