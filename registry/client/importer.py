"""Import an adapter from any Hugging Face Hub-compatible server (the Hub, a mirror, or
another lorareg) as a new version: ``lorareg import hf://org/repo@rev acme/name``.

The snapshot is downloaded with huggingface_hub itself, so ``HF_ENDPOINT``, ``HF_TOKEN``
(or the saved login), proxies and its retries apply; an explicit ``endpoint``/``token``
wins. The revision is pinned to the commit the hub resolves it to before any file is
fetched, so a branch that moves mid-import cannot mix two commits. The files land in a
temporary folder as real files (not cache symlinks) and go through the client's normal
push: every validation of ``lorareg push`` applies (no pickles, a LoRA config whose
ranks match the tensors, safe paths), and identical content creates nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from registry.catalog.refs import parse_repo
from registry.client.base import RegistryClient
from registry.compat.hub_errors import hub_errors
from registry.compat.sources import parse_hf_source
from registry.domain import PushResult
from registry.errors import InvalidInput, Unavailable
from registry.storage.base import Progress


@dataclass(frozen=True)
class ImportResult:
    """What an import did: the push's result and the exact source it read."""

    source: str  # hf://org/repo@commit
    endpoint: str
    files: list[str]
    push: PushResult


def parse_hub_source(spec: str) -> tuple[str, str | None]:
    """``hf://org/repo[@rev]`` -> (repo id, revision or None for the default branch)."""
    if not spec.startswith("hf://"):
        raise InvalidInput(
            f"{spec!r} is not a hub source; write hf://org/repo or hf://org/repo@rev"
        )
    return parse_hf_source(spec)


def _hub_errors(where: str, doing: str) -> AbstractContextManager[None]:
    return hub_errors(
        where, doing=doing, token_hint="pass --token or set HF_TOKEN", missing_file=Unavailable
    )


def import_from_hub(
    client: RegistryClient,
    source: str,
    repo: str,
    *,
    base: str | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    exclude: Sequence[str] = (),
    progress: Progress | None = None,
) -> ImportResult:
    """Download ``source`` (``hf://org/repo@rev``) and push it as the next version of ``repo``.

    ``exclude`` takes glob patterns of files to leave out (e.g. ``*.bin`` next to the
    safetensors weights). The version is tagged ``imported_from=hf://org/repo@commit``.
    """
    from huggingface_hub import HfApi, constants, snapshot_download

    repo_id, revision = parse_hub_source(source)
    parse_repo(repo)  # a bad target name fails before any download
    hub = (endpoint or constants.ENDPOINT).rstrip("/")
    where = f"hf://{repo_id}@{revision or 'main'} on {hub}"
    with _hub_errors(where, "read the repository"):
        info = HfApi(endpoint=hub, token=token).model_info(repo_id, revision=revision)
    commit = info.sha or revision or "main"
    pinned = f"hf://{repo_id}@{commit}"
    with tempfile.TemporaryDirectory(prefix="lorareg-import-") as tmp:
        folder = Path(tmp) / "snapshot"
        with _hub_errors(f"{pinned} on {hub}", "download every file"):
            snapshot_download(
                repo_id,
                revision=commit,
                endpoint=hub,
                token=token,
                local_dir=folder,
                cache_dir=Path(tmp) / "hf-cache",
                ignore_patterns=list(exclude) or None,
            )
        # huggingface_hub keeps its bookkeeping under .cache/, which push skips (hidden).
        files = sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and ".cache" not in p.relative_to(folder).parts
        )
        result = client.push(
            folder,
            repo,
            base=base,
            description=description or f"imported from {pinned}",
            tags={"imported_from": pinned, **(tags or {})},
            progress=progress,
        )
    return ImportResult(source=pinned, endpoint=hub, files=files, push=result)
