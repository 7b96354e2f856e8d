"""event_notify: PostgreSQL announces every new event on channel ``lorareg_events``

Each server process listens on one connection and wakes all its feed readers at once,
instead of every waiting reader querying the catalog. The notice is sent when the
inserting transaction commits (never for one rolled back); its payload is the event id.
SQLite has no notifications: servers on it poll once per process instead.

Revision ID: 0012_event_notify
Revises: 0011_interference
Create Date: 2026-12-03 12:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0012_event_notify"
down_revision = "0011_interference"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION lorareg_event_notify() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('lorareg_events', NEW.id::text);
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER events_notify AFTER INSERT ON events"
        " FOR EACH ROW EXECUTE FUNCTION lorareg_event_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS events_notify ON events")
    op.execute("DROP FUNCTION IF EXISTS lorareg_event_notify()")
