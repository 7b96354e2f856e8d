"""A base model in a Hugging Face Hub (or any hub-compatible server) repository.

Calls, all through huggingface_hub's own client (so ``HF_ENDPOINT``, ``HF_TOKEN``, the
saved login, proxies and its user agent apply):

- ``HfApi.model_info(files_metadata=True)``: ``GET /api/models/{repo}/revision/{rev}?blobs=true``
  resolves the revision to a commit and lists files with sizes and LFS sha256s;
- ``GET /{repo}/resolve/{commit}/{file}`` with a ``Range`` header: safetensors headers,
  pinned to that commit so a push mid-read cannot mix two revisions;
- ``hf_hub_download``: ``config.json`` and the shard index (``HEAD`` then ``GET`` on the
  same resolve route), cached like any hub download.

Headers are parsed by lorareg's own reader rather than ``HfApi.get_safetensors_metadata``
so that every source applies the same validation and the same size cap, and so the bytes
fetched are counted (that helper always fetches the first 100 kB of every shard).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from huggingface_hub import HfApi, get_session, hf_hub_download, hf_hub_url
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

from registry.compat.hub_errors import hub_errors
from registry.errors import BaseSourceNotFound


class HubSource:
    """Top-level files of ``repo_id`` at ``revision`` (None: the repo's default branch)."""

    def __init__(
        self,
        repo_id: str,
        revision: str | None = None,
        *,
        endpoint: str | None = None,
        token: str | bool | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.repo_id = repo_id
        self.revision = revision
        self.endpoint = endpoint
        self.token = token
        self.cache_dir = cache_dir
        self.url = f"hf://{repo_id}@{revision or 'main'}"
        self.commit: str | None = None
        self.bytes_read = 0
        self._sizes: dict[str, int] = {}
        self._sha256: dict[str, str] = {}

    def _errors(self, doing: str) -> AbstractContextManager[None]:
        return hub_errors(
            f"{self.url} on {self.endpoint or 'the configured hub (HF_ENDPOINT)'}",
            doing=doing,
            token_hint="pass a token with HF_TOKEN or `hf auth login`",
            not_found=BaseSourceNotFound,
            missing_file=BaseSourceNotFound,
        )

    def files(self) -> dict[str, int]:
        if self.commit is None:
            api = HfApi(endpoint=self.endpoint, token=self.token)
            with self._errors("list the repository"):
                info = api.model_info(self.repo_id, revision=self.revision, files_metadata=True)
            self.commit = info.sha or self.revision or "main"
            self.url = f"hf://{self.repo_id}@{self.commit}"
            for sib in info.siblings or []:
                # Only the repository root: subfolders hold other components (e.g. onnx/).
                if "/" in sib.rfilename or sib.size is None:
                    continue
                self._sizes[sib.rfilename] = int(sib.size)
                if sib.lfs is not None:
                    self._sha256[sib.rfilename] = str(sib.lfs.sha256).lower()
        return dict(self._sizes)

    def _url(self, path: str) -> str:
        return hf_hub_url(self.repo_id, path, revision=self.commit, endpoint=self.endpoint)

    def read(self, path: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        headers = build_hf_headers(token=self.token)
        headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        with self._errors(f"read {path}"):
            resp = get_session().get(self._url(path), headers=headers)
            hf_raise_for_status(resp)
        data: bytes = resp.content
        self.bytes_read += len(data)
        # A server that ignores Range answers 200 with the whole file.
        return data if resp.status_code == 206 else data[offset : offset + length]

    def read_small(self, path: str, size: int) -> bytes:
        with self._errors(f"download {path}"):
            local = hf_hub_download(
                self.repo_id,
                path,
                revision=self.commit,
                endpoint=self.endpoint,
                token=self.token,
                cache_dir=self.cache_dir,
            )
        data = Path(str(local)).read_bytes()
        self.bytes_read += len(data)
        return data

    def known_sha256(self, path: str) -> str | None:
        return self._sha256.get(path)

    def stream(self, path: str) -> Iterator[bytes]:
        headers = build_hf_headers(token=self.token)
        with (
            self._errors(f"read {path}"),
            get_session().stream("GET", self._url(path), headers=headers) as resp,
        ):
            hf_raise_for_status(resp)
            for chunk in resp.iter_bytes():
                self.bytes_read += len(chunk)
                yield chunk
