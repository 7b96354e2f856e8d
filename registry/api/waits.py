"""A cap on concurrent waits on the event feed per caller: long polls (``/api/v1/events?wait=``)
and streams (``Accept: text/event-stream``) count together. Waiting costs no catalog query
(the process's one event watcher wakes every reader), but each holds a connection and a
task, so one client cannot hold thousands. Counted per server process (each replica holds
its own waiters)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from registry.errors import TooManyWaits
from registry.observability.metrics import FOLLOWERS
from registry.principal import Principal

# A waiter that finds the cap reached is told to retry after this long.
RETRY_AFTER_S = 5


class WaitLimiter:
    """Counts waits per key in the event loop's thread: no lock needed, as ``acquire`` and
    its release never await."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active: dict[str, int] = {}

    def acquire(self, key: str, *, what: str = "long poll") -> Callable[[], None]:
        """Take one wait for ``key`` and return the function that gives it back (calling
        it again does nothing); TooManyWaits when ``limit`` are already held."""
        held = self.active.get(key, 0)
        if held >= self.limit:
            raise TooManyWaits(
                f"{held} long polls and streams of the event feed are already open for this"
                f" token (the limit is {self.limit}); close one before opening a {what},"
                " or poll without wait",
                retry_after_s=RETRY_AFTER_S,
            )
        self.active[key] = held + 1
        FOLLOWERS.inc()
        done = False

        def release() -> None:
            nonlocal done
            if done:
                return
            done = True
            FOLLOWERS.dec()
            left = self.active[key] - 1
            if left:
                self.active[key] = left
            else:
                del self.active[key]

        return release

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """One long poll for ``key`` while the block runs."""
        release = self.acquire(key)
        try:
            yield
        finally:
            release()


def wait_key(principal: Principal) -> str:
    """Tokens count by id; without one (an open server) every caller shares one count,
    since the name they declare is theirs to vary."""
    return f"token:{principal.token_id}" if principal.token_id is not None else "open"
