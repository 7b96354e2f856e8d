"""The background loop of ``lorareg serve`` that queues and sends webhook deliveries."""

from __future__ import annotations

import logging
import threading

import httpx

from registry.db.database import Database
from registry.lifecycle import webhooks

log = logging.getLogger("lorareg.webhooks")


class WebhookDispatcher:
    """Runs ``enqueue`` + ``deliver_due`` every ``interval_s`` in a daemon thread."""

    def __init__(self, db: Database, *, interval_s: float = 1.0) -> None:
        self.db = db
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._http = httpx.Client(timeout=10.0, follow_redirects=False)

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        return self._http.post(url, content=body, headers=headers).status_code

    def tick(self) -> int:
        webhooks.enqueue(self.db)
        return webhooks.deliver_due(self.db, self.send)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # a broken database must not kill the loop; it retries
                log.exception("webhook delivery loop failed; retrying")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._http.close()
