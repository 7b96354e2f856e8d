"""One watcher per server process: learns of new events and hands them over in batches.

On PostgreSQL a trigger (migration ``0012_event_notify``) sends each new event's id on the
channel ``lorareg_events`` when its transaction commits; the watcher LISTENs on one
connection of its own and reads the events a notice names. SQLite has no notifications,
so the watcher polls the catalog every ``poll_s`` instead: one query per process, however
many readers wait. Either way the readers never query the catalog while they wait.

The watcher runs in a thread and calls ``deliver`` from it; the event feed of the API
(``registry.api.feed``) passes the batches on to its event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.engine import make_url

from registry.catalog.records import event_info
from registry.db import models as m
from registry.db.database import Database
from registry.domain import EventInfo
from registry.lifecycle.events import events_after

CHANNEL = "lorareg_events"
# Events read per query while catching up; a burst larger than this takes several.
PAGE = 1000

log = logging.getLogger("lorareg.feed")

Deliver = Callable[[list[EventInfo]], None]


class EventWatcher:
    """Reads every event newer than ``head`` and passes it to ``deliver``, oldest first.

    ``resync_s``: on PostgreSQL, how often to read the catalog even without a notice (a
    notice sent while the listening connection was down is not replayed); also how long
    to wait before connecting again after losing the connection.
    """

    def __init__(
        self,
        db: Database,
        deliver: Deliver,
        *,
        head: int,
        poll_s: float = 0.1,
        resync_s: float = 5.0,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.db = db
        self.deliver = deliver
        self.head = head
        self.poll_s = poll_s
        self.resync_s = resync_s
        # False once nobody can take the events (the event loop of the app is gone).
        self.alive = alive
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="event-watcher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, *, timeout: float = 2.0) -> None:
        self.stop_event.set()
        if timeout and self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=timeout)

    def _stopped(self) -> bool:
        return self.stop_event.is_set() or not self.alive()

    def _run(self) -> None:
        while not self._stopped():
            try:
                if self.db.is_sqlite:
                    self._poll()
                else:
                    self._listen()
            except Exception as exc:  # the catalog is down: readers wait, we retry
                log.warning("event watcher: %s; retrying in %.0f s", exc, self.resync_s)
                self.stop_event.wait(self.resync_s)

    def _poll(self) -> None:
        while not self._stopped():
            self.catch_up()
            self.stop_event.wait(self.poll_s)

    def _listen(self) -> None:
        import psycopg

        url = make_url(self.db.url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.catch_up()  # whatever was committed before we listened
            quiet = 0.0
            while not self._stopped():
                # A short timeout so that stopping never waits long for the next notice.
                ids = [int(n.payload) for n in conn.notifies(timeout=0.5, stop_after=1)]
                if ids:  # the rest of a burst, already received: one read for all of it
                    ids += [int(n.payload) for n in conn.notifies(timeout=0)]
                if ids:
                    quiet = 0.0
                    self._notified(ids)
                else:
                    quiet += 0.5
                    if quiet >= self.resync_s:
                        quiet = 0.0
                        self.catch_up()

    def _notified(self, ids: list[int]) -> None:
        # A transaction that took its id earlier may commit after one that took a later id:
        # such an event is read by id, as "newer than head" no longer covers it.
        late = sorted(i for i in ids if i <= self.head)
        if late:
            with self.db.read() as s:
                rows = s.scalars(select(m.Event).where(m.Event.id.in_(late)).order_by(m.Event.id))
                found = [event_info(r) for r in rows]
            if found:
                self.deliver(found)
        if any(i > self.head for i in ids):
            self.catch_up()

    def catch_up(self) -> None:
        """Read and deliver every event newer than ``head``."""
        while batch := events_after(self.db, self.head, limit=PAGE):
            self.head = batch[-1].id
            self.deliver(batch)
            if len(batch) < PAGE:
                return
