"""Claiming due sources: each source due is handed to exactly one poller.

A claim moves the due sources' ``next_poll_at`` to a lease in one UPDATE whose
subquery locks the rows it picks and skips rows locked by another instance
(PostgreSQL), or in two statements on SQLite's single writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, update
from sqlmodel import col, select
from sqlmodel.sql.expression import Select

from metwatch.models import SourceState
from metwatch.store.base import aware
from metwatch.store.tables import SourceRow

#: The columns a claim hands back, in ``SourceState`` order: a source that has
#: moved permanently is polled at its new address.
_STATE_COLUMNS = (
    col(SourceRow.id), func.coalesce(col(SourceRow.moved_to), col(SourceRow.url)),
    col(SourceRow.etag), col(SourceRow.last_modified), col(SourceRow.error_count),
    col(SourceRow.last_success_at), col(SourceRow.refresh_hint),
)  # fmt: skip


def claim_due(conn: Connection, now: datetime, lease: datetime, limit: int) -> list[SourceState]:
    """Claim at most ``limit`` sources due at ``now`` until ``lease``, most overdue first."""
    if conn.dialect.name == "sqlite":
        return _claim_on_sqlite(conn, now, lease, limit)
    return _claim_locking(conn, now, lease, limit)


def _due(now: datetime, limit: int) -> Select[str, datetime | None]:
    """The ``limit`` most overdue enabled sources, locked against other instances.

    SKIP LOCKED passes over rows another instance's claim holds, instead of waiting
    for it and then claiming them again. SQLAlchemy renders the lock only where the
    database has one: SQLite has a single writer and needs none.
    """
    return (
        select(col(SourceRow.id), col(SourceRow.next_poll_at))
        .where(col(SourceRow.enabled), col(SourceRow.next_poll_at) <= now)
        .order_by(col(SourceRow.next_poll_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def _claim_locking(
    conn: Connection, now: datetime, lease: datetime, limit: int
) -> list[SourceState]:
    """One statement: UPDATE ... FROM (the locked due rows) ... RETURNING.

    RETURNING reports the new ``next_poll_at`` (the lease), so the old one, for the
    order, comes from the subquery: PostgreSQL lets RETURNING read it.
    """
    due = _due(now, limit).subquery("due")
    rows = conn.execute(
        update(SourceRow)
        .where(col(SourceRow.id) == due.c.id)
        .values(next_poll_at=lease)
        .returning(*_STATE_COLUMNS, due.c.next_poll_at)
    )
    # RETURNING comes in no particular order; the last column is the due time.
    return [_state(r[:-1], r[-1]) for r in sorted(rows, key=lambda r: r[-1])]


def _claim_on_sqlite(
    conn: Connection, now: datetime, lease: datetime, limit: int
) -> list[SourceState]:
    """Two statements: read the due ids in order, then claim them with RETURNING.

    SQLite's RETURNING can read neither the old ``next_poll_at`` nor the UPDATE's
    FROM clause, so the order needs its own read. The UPDATE checks again that each
    row is still due: another process on the same file (``poll --once`` beside the
    daemon) may have claimed it since.
    """
    due: dict[str, datetime | None] = {sid: at for sid, at in conn.execute(_due(now, limit))}
    order = {sid: n for n, sid in enumerate(due)}
    rows = conn.execute(
        update(SourceRow)
        .where(
            col(SourceRow.id).in_(list(order)),
            col(SourceRow.enabled),
            col(SourceRow.next_poll_at) <= now,
        )
        .values(next_poll_at=lease)
        .returning(*_STATE_COLUMNS)
    )
    # RETURNING comes in no particular order.
    return [_state(r, due[r[0]]) for r in sorted(rows, key=lambda r: order[r[0]])]


def _state(row: Sequence[Any], due_at: datetime | None) -> SourceState:
    source_id, url, etag, last_modified, error_count, last_success_at, refresh_hint = row
    return SourceState(source_id, url, etag, last_modified, error_count, aware(last_success_at),
                       aware(due_at), refresh_hint)  # fmt: skip
