"""Telling running vLLM engines that an adapter moved (``lorareg sync --engine-url``).

vLLM keeps a name it has loaded forever, and keys its prefix cache by (name, path): so a
promotion must reach it as a load of the new version **from a new path** under the same
name. A switch, for one engine and one name:

1. ``POST /v1/unload_lora_adapter``: the name leaves vLLM's table. Requests already
   running keep the LoRA request they started with (the old path and adapter id) and
   finish on the old version; vLLM reloads it from its path if it evicted it, which is
   why the old folder stays on disk for the grace period.
2. ``POST /v1/load_lora_adapter`` with the version folder's own path (never the link):
   vLLM loads the files, then the name serves the new version. A request that arrives
   between 1 and 2 (the time vLLM takes to load the adapter) is resolved by the engine's
   resolver plugins if it has any (the folder link already points at the new version),
   and answered 404 otherwise.
3. If a resolver loaded the name in between, step 2 is refused as "already loaded": it
   is repeated with ``load_inplace`` (same adapter id, our path). The resolver read the
   same new version, so requests on that id keep identical weights.

Engines are reconciled too, not only told of changes: every few seconds (and when sync
starts) each engine's loaded names are compared with the synced folders, and a name
loaded from any other path (the link, as vLLM's FilesystemResolver does, or an older
version while sync was down) is switched to the version folder. A name whose adapter
leaves the folder (``--prune``, an erased version) is unloaded when it leaves; names of
adapters this folder never held are not touched.

Engine calls never hold the folder's state: a failed call is logged and retried by the
reconcile loop, so an engine that is down or restarting never stops the sync.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from registry.catalog.refs import Repo
from registry.sync.layout import NodeLayout

Log = Callable[[str], None]
RECONCILE_EVERY_S = 5.0


class EngineError(Exception):
    """An engine refused a call or could not be reached; the message says which."""


@dataclass(frozen=True)
class Loaded:
    """A LoRA adapter an engine has under ``name``, loaded from ``path``."""

    name: str
    path: str


class VllmEngine:
    """vLLM's runtime LoRA endpoints (the server needs
    ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``)."""

    def __init__(self, url: str, *, timeout_s: float = 30.0, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s, headers=headers)

    def loaded(self) -> dict[str, Loaded]:
        """The adapters the engine has loaded, by name (``GET /v1/models``)."""
        doc = self._call("GET", "/v1/models").json()
        out: dict[str, Loaded] = {}
        for card in doc.get("data", []):
            # Base models have no parent; LoRA adapters name the base they run on.
            if isinstance(card, dict) and card.get("parent") and card.get("root"):
                out[str(card["id"])] = Loaded(str(card["id"]), str(card["root"]))
        return out

    def load(self, name: str, path: str, *, inplace: bool = False) -> None:
        body: dict[str, Any] = {"lora_name": name, "lora_path": path}
        if inplace:
            body["load_inplace"] = True
        self._call("POST", "/v1/load_lora_adapter", json=body)

    def unload(self, name: str) -> bool:
        """Remove ``name``; False when the engine did not have it."""
        try:
            self._call("POST", "/v1/unload_lora_adapter", json={"lora_name": name})
        except EngineError as exc:
            if "cannot be found" in str(exc):
                return False
            raise
        return True

    def switch(self, name: str, path: str) -> None:
        """Serve ``name`` from ``path`` from now on (see the module's steps 1-3)."""
        self.unload(name)
        try:
            self.load(name, path)
        except EngineError as exc:
            if "already been loaded" not in str(exc):
                raise
            self.load(name, path, inplace=True)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> VllmEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise EngineError(f"cannot reach the engine at {self.url}: {exc}") from None
        if resp.status_code == 404 and path == "/v1/load_lora_adapter":
            raise EngineError(
                f"{self.url} has no runtime LoRA endpoints: start vLLM with --enable-lora"
                " and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
            )
        if resp.status_code >= 400:
            raise EngineError(f"{self.url}{path} answered {resp.status_code}: {_message(resp)}")
        return resp


def _message(resp: httpx.Response) -> str:
    try:
        doc = resp.json()
        err = doc.get("error", doc) if isinstance(doc, dict) else doc
        return str(err.get("message", err) if isinstance(err, dict) else err)[:300]
    except ValueError:
        return resp.text[:300]


class EngineNotifier:
    """Keeps the names of the adapters in ``layout`` loaded from their version folders in
    every engine; ``names(repo)`` are the engine names of one adapter."""

    def __init__(
        self,
        layout: NodeLayout,
        engines: Sequence[VllmEngine],
        *,
        log: Log,
        names: Callable[[Repo], list[str]] | None = None,
        every_s: float = RECONCILE_EVERY_S,
    ) -> None:
        self.layout = layout
        self.engines = list(engines)
        self.log = log
        self.names = names or (lambda repo: [str(repo)])
        self.every_s = every_s
        self._lock = threading.Lock()  # one reconcile at a time, flips included
        self._down: set[str] = set()  # engines whose last call failed (logged once)
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Reconcile now and then every ``every_s`` in a daemon thread, until ``stop``."""
        self.reconcile()
        self._thread = threading.Thread(target=self._loop, name="lorareg-engines", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for engine in self.engines:
            engine.close()

    def changed(self, repo: Repo, folder: Path | None) -> None:
        """``repo`` now serves from ``folder`` (None: it left the synced folder)."""
        with self._lock:
            for engine in self.engines:
                self._guard(engine, functools.partial(self._apply, engine, repo, folder, None))

    def reconcile(self) -> None:
        """Compare every engine's loaded names with the folder and fix what differs."""
        with self._lock:
            wanted: dict[str, tuple[Repo, Path]] = {}
            for repo, folder in self.layout.linked():
                for name in self.names(repo):
                    wanted[name] = (repo, folder)
            for engine in self.engines:

                def fix(e: VllmEngine = engine) -> None:
                    loaded = e.loaded()
                    for name in loaded.keys() & wanted.keys():
                        repo, folder = wanted[name]
                        self._apply(e, repo, folder, loaded)

                self._guard(engine, fix)

    def _apply(
        self,
        engine: VllmEngine,
        repo: Repo,
        folder: Path | None,
        loaded: dict[str, Loaded] | None,
    ) -> None:
        loaded = engine.loaded() if loaded is None else loaded
        for name in self.names(repo):
            have = loaded.get(name)
            if have is None:
                continue  # not loaded there: its resolver loads the current one on demand
            if folder is None:
                engine.unload(name)
                self.log(f"{engine.url}: unloaded {name} (no longer synced)")
            elif have.path != str(folder):
                engine.switch(name, str(folder))
                self.log(f"{engine.url}: {name} now loads {self.layout.relative(folder)}")

    def _guard(self, engine: VllmEngine, work: Callable[[], None]) -> None:
        try:
            work()
        except EngineError as exc:
            if engine.url not in self._down:
                self._down.add(engine.url)
                self.log(f"engine {exc}; retrying every {self.every_s:g} s")
            return
        if engine.url in self._down:
            self._down.discard(engine.url)
            self.log(f"engine {engine.url} reachable again")

    def _loop(self) -> None:
        while not self.stop.wait(self.every_s):
            self.reconcile()


class EngineAwareLayout(NodeLayout):
    """A ``NodeLayout`` that tells ``notifier`` after every flip and removal of a link,
    so sync itself needs no other change to reach engines."""

    notifier: EngineNotifier | None = None

    def flip(self, repo: Repo, folder: Path) -> None:
        super().flip(repo, folder)
        if self.notifier is not None:
            self.notifier.changed(repo, folder.resolve())

    def unlink(self, repo: Repo) -> None:
        super().unlink(repo)
        if self.notifier is not None:
            self.notifier.changed(repo, None)
