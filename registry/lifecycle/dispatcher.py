"""The background loop of ``lorareg serve`` that queues and sends webhook deliveries."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection

import httpx

from registry.db.database import Database
from registry.errors import InvalidInput
from registry.lifecycle import webhooks
from registry.lifecycle.webhook_targets import Resolver, resolve_target, system_resolver

log = logging.getLogger("lorareg.webhooks")


class WebhookDispatcher:
    """Runs ``enqueue`` + ``deliver_due`` every ``interval_s`` in a daemon thread.

    Every send resolves and checks the host again and connects to the checked address
    (``allow_hosts``: LORAREG_WEBHOOK_ALLOW_HOSTS, the same list creation honours).
    """

    def __init__(
        self,
        db: Database,
        *,
        interval_s: float = 1.0,
        allow_hosts: Collection[str] = (),
        resolve: Resolver = system_resolver,
    ) -> None:
        self.db = db
        self.interval_s = interval_s
        self.allow_hosts = tuple(allow_hosts)
        self.resolve = resolve
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        # No proxies from the environment: the connection must go to the checked address.
        # No kept-alive connections either: pooled by address, one opened with another
        # host's TLS name could carry this host's request.
        self._http = httpx.Client(
            timeout=10.0,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST to the address checked just now; failures become short codes, not text."""
        try:
            target = resolve_target(url, allow_hosts=self.allow_hosts, resolve=self.resolve)
        except InvalidInput:  # WebhookTargetRefused included: the name now points inside
            raise webhooks.DeliveryFailed("address_refused") from None
        try:
            resp = self._http.post(
                target.pinned_url(),
                content=body,
                headers={**headers, "Host": target.host_header},
                extensions={"sni_hostname": target.host},
            )
        except httpx.TimeoutException:
            raise webhooks.DeliveryFailed("timeout") from None
        except httpx.ConnectError:
            raise webhooks.DeliveryFailed("connect_failed") from None
        except httpx.HTTPError:
            raise webhooks.DeliveryFailed("send_failed") from None
        return resp.status_code

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
