"""A cap on concurrent long polls per caller: each waiting ``/api/v1/events?wait=`` request
re-queries the catalog while it waits, so one client holding hundreds of them slows every
other request. Counted per server process (each replica holds its own waiters)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from registry.errors import TooManyWaits
from registry.lifecycle.access import Principal

# A waiter that finds the cap reached is told to retry after this long.
RETRY_AFTER_S = 5


class WaitLimiter:
    """Counts waits per key in the event loop's thread: no lock needed, as ``acquire`` and
    ``release`` never await."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active: dict[str, int] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """One wait for ``key``; TooManyWaits when ``limit`` are already held."""
        held = self.active.get(key, 0)
        if held >= self.limit:
            raise TooManyWaits(
                f"{held} long polls of the event feed are already open for this token"
                f" (the limit is {self.limit}); wait for one to answer, or poll without wait",
                retry_after_s=RETRY_AFTER_S,
            )
        self.active[key] = held + 1
        try:
            yield
        finally:
            left = self.active[key] - 1
            if left:
                self.active[key] = left
            else:
                del self.active[key]


def wait_key(principal: Principal) -> str:
    """Tokens count by id; without one (an open server) every caller shares one count,
    since the name they declare is theirs to vary."""
    return f"token:{principal.token_id}" if principal.token_id is not None else "open"
