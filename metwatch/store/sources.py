"""Sources: sync with the rules, claim due ones, record poll outcomes, health.

Several instances may share one PostgreSQL database: ``claim_due_sources``
moves a source's ``next_poll_at`` forward with a compare-and-set, so exactly
one instance polls it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import col, select

from metwatch.errors import StoreError
from metwatch.models import (
    SourceHealth,
    SourceSpec,
    SourceState,
)
from metwatch.store.base import StoreBase, aware
from metwatch.store.tables import (
    SourceRow,
)

#: How long a claimed source stays claimed if its poller dies mid-poll.
CLAIM_LEASE = timedelta(minutes=10)


class SourceStore(StoreBase):
    """The sources table: what to poll when, and how each poll went."""

    def sync_sources(
        self, specs: Sequence[SourceSpec], first_poll: Callable[[SourceSpec], datetime]
    ) -> None:
        """Make the sources table match the rules: add, update, disable removed."""
        wanted = {s.id: s for s in specs}
        with self._session() as s:
            for row in s.exec(select(SourceRow)).all():
                spec = wanted.pop(row.id, None)
                if spec is None:
                    row.enabled = False
                    continue
                if row.url != spec.url:
                    row.etag = row.last_modified = None
                row.name, row.kind, row.url = spec.name, spec.kind, spec.url
                row.interval, row.enabled = spec.interval, True
                if row.next_poll_at is None:
                    row.next_poll_at = first_poll(spec)
            for spec in wanted.values():
                s.add(
                    SourceRow(
                        id=spec.id, name=spec.name, kind=spec.kind, url=spec.url,
                        interval=spec.interval, next_poll_at=first_poll(spec),
                    )
                )  # fmt: skip

    def make_all_due(self, now: datetime) -> None:
        """Make every enabled source due now (``poll --once``)."""
        with self._session() as s:
            s.execute(
                update(SourceRow)
                .where(col(SourceRow.enabled))
                .values(next_poll_at=now)
                .execution_options(synchronize_session=False)
            )

    def claim_due_sources(self, now: datetime, limit: int = 100) -> list[SourceState]:
        """Claim sources due at ``now``: each is handed to exactly one caller."""
        claimed: list[SourceState] = []
        with self._session() as s:
            rows = s.exec(
                select(SourceRow)
                .where(col(SourceRow.enabled), col(SourceRow.next_poll_at) <= now)
                .order_by(col(SourceRow.next_poll_at))
                .limit(limit)
            ).all()
            for row in rows:
                result = s.execute(
                    update(SourceRow)
                    .where(
                        col(SourceRow.id) == row.id,
                        col(SourceRow.next_poll_at) == row.next_poll_at,
                    )
                    .values(next_poll_at=now + CLAIM_LEASE)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(
                        SourceState(row.id, row.url, row.etag, row.last_modified, row.error_count)
                    )
        return claimed

    def release_claim(self, source_id: str, now: datetime) -> None:
        """A poll was abandoned (shutdown): the source is due again at once."""
        with self._session() as s:
            row = s.get(SourceRow, source_id)
            if row is not None:
                row.next_poll_at = now

    def record_success(
        self,
        source_id: str,
        *,
        now: datetime,
        next_poll: datetime,
        etag: str | None,
        last_modified: str | None,
        new_items: int,
        modified: bool = True,
    ) -> bool:
        """Record a good poll; True if the source was failing and has recovered."""
        with self._session() as s:
            row = s.get_one(SourceRow, source_id)
            recovered = row.failing
            row.last_polled_at = row.last_success_at = now
            row.next_poll_at = next_poll
            if modified:
                row.etag, row.last_modified = etag, last_modified
            row.error_count, row.failing, row.last_error = 0, False, None
            row.items_seen += new_items
            return recovered

    def record_failure(
        self, source_id: str, *, now: datetime, next_poll: datetime, error: str, threshold: int
    ) -> bool:
        """Record a failed poll; True exactly when the source has just become failing."""
        with self._session() as s:
            row = s.get_one(SourceRow, source_id)
            row.last_polled_at, row.next_poll_at = now, next_poll
            row.error_count += 1
            row.last_error = error
            newly = not row.failing and row.error_count >= threshold
            row.failing = row.failing or newly
            return newly

    def source_health(self) -> list[SourceHealth]:
        with self._session() as s:
            rows = s.exec(select(SourceRow).where(col(SourceRow.enabled)).order_by(SourceRow.id))
            return [
                SourceHealth(
                    r.id, r.name, r.url, aware(r.last_success_at), r.last_error, r.error_count,
                    aware(r.next_poll_at), r.items_seen, r.failing,
                )
                for r in rows
            ]  # fmt: skip

    def last_success(self) -> datetime | None:
        """When any source was last polled successfully."""
        with self._session() as s:
            return aware(s.exec(select(func.max(SourceRow.last_success_at))).one())

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self._session() as s:
                s.exec(select(1)).one()
        except StoreError:
            return False
        return True

    def source_interval(self, source_id: str) -> int:
        with self._session() as s:
            return s.get_one(SourceRow, source_id).interval
