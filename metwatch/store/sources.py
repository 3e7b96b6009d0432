"""Sources: sync with the rules, claim due ones, record poll outcomes, health.

Several instances may share one PostgreSQL database: ``claim_due_sources``
moves the due sources' ``next_poll_at`` to a lease (``metwatch.store.claims``),
so exactly one instance polls each source.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, Connection, Table, and_, bindparam, case, func, update
from sqlalchemy.exc import NoResultFound
from sqlmodel import Session, col, select

from metwatch.errors import StoreError
from metwatch.models import (
    SourceHealth,
    SourceSpec,
    SourceState,
)
from metwatch.store.base import StoreBase, aware
from metwatch.store.claims import claim_due
from metwatch.store.tables import (
    SourceRow,
)

_SOURCES: Table = SourceRow.__table__  # type: ignore[attr-defined]
#: How long a claimed source stays claimed if its poller dies mid-poll.
CLAIM_LEASE = timedelta(minutes=10)
#: Admins hear of a source's gaps at most this often.
GAP_QUIET = timedelta(days=1)


def _read_as(url: object, kind: object, link_selector: object) -> ColumnElement[bool]:
    """The row is still read as the poll read it: a rules reload during the poll
    may have given the source another address, kind or selector, and forgotten its
    validators and last success (``sync_sources``); the poll must not restore them."""
    return and_(
        _SOURCES.c.url == url, _SOURCES.c.kind == kind,
        _SOURCES.c.link_selector.is_not_distinct_from(link_selector),
    )  # fmt: skip


#: One 304 answer: the same as ``record_success(..., modified=False, new_items=0)``.
#: Executed with a list of parameters, it is one executemany for a whole batch.
_NOT_MODIFIED = (
    update(SourceRow)
    .where(col(SourceRow.id) == bindparam("source_id"))
    .values(
        last_polled_at=bindparam("now"), last_success_at=bindparam("now"),
        next_poll_at=bindparam("next_poll"), error_count=0, failing=False, last_error=None,
    )
)  # fmt: skip
#: The same for a poll that knows how it read the source (``record_success``'s ``read_as``).
_NOT_MODIFIED_READ_AS = _NOT_MODIFIED.values(
    last_success_at=case(
        (
            _read_as(bindparam("read_url"), bindparam("read_kind"), bindparam("read_selector")),
            bindparam("now"),
        ),
        else_=_SOURCES.c.last_success_at,
    )
)


def _read_afresh(row: SourceRow, spec: SourceSpec, first_poll: datetime) -> None:
    """The rules now read ``row`` as ``spec``: another address, kind or selector."""
    if row.url != spec.url:
        # A new address from the user: any move the old one made is the user's to
        # have followed, and the old one's backoff says nothing of it: polled
        # soon, as a new source, but not before its site's Retry-After.
        row.moved_to = None
        held = aware(row.held_until) if _host(row.url) == _host(spec.url) else None
        row.next_poll_at = max(first_poll, held) if held else first_poll
    # The validators of the old reading would keep a 304 from showing the new one,
    # and its first poll finds everything new without that being a gap.
    row.etag = row.last_modified = row.last_success_at = None
    row.refresh_hint = None
    # Its errors were the old reading's (often the reason for the change). A
    # failing source stays marked until a good poll, which tells the admins it
    # has recovered.
    row.error_count, row.last_error = 0, None


def _poll_sooner(row: SourceRow, spec: SourceSpec, earliest: datetime) -> None:
    """The rules shortened ``row``'s interval: its next poll comes one new interval
    after its last (not after the old, longer wait), but not before ``earliest``,
    the feed's own ttl or the site's Retry-After. A failing source keeps its
    backoff; a poll due within a claim's lease anyway is left as it is (it may be
    a lease: another instance is polling the source now)."""
    due, last = aware(row.next_poll_at), aware(row.last_polled_at)
    if due is None or last is None or row.error_count or due <= earliest + CLAIM_LEASE:
        return
    wait = max(spec.interval, row.refresh_hint or 0)
    held = aware(row.held_until)
    sooner = max(last + timedelta(seconds=wait), earliest, held or earliest)
    row.next_poll_at = min(due, sooner)


def _hold_site(s: Session, held: SourceRow, until: datetime) -> None:
    """The site asked ``held`` to wait (Retry-After): its other sources wait too.
    One being polled right now keeps what its own answer says."""
    host = _host(held.moved_to or held.url)
    others = s.exec(select(SourceRow).where(col(SourceRow.enabled), col(SourceRow.id) != held.id))
    for row in others:
        due = aware(row.next_poll_at)
        if _host(row.moved_to or row.url) == host and (due is None or due < until):
            row.next_poll_at = until
            row.held_until = max(until, aware(row.held_until) or until)


def _host(url: str) -> str:
    return urlsplit(url).netloc.lower()


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
                if (row.url, row.kind, row.link_selector) != (
                    spec.url, spec.kind, spec.link_selector,
                ):  # fmt: skip
                    _read_afresh(row, spec, first_poll(spec))
                elif spec.interval < row.interval:
                    _poll_sooner(row, spec, first_poll(spec))
                row.name, row.kind, row.url = spec.name, spec.kind, spec.url
                row.link_selector = spec.link_selector
                row.interval, row.enabled = spec.interval, True
                if row.next_poll_at is None:
                    row.next_poll_at = first_poll(spec)
            for spec in wanted.values():
                s.add(
                    SourceRow(
                        id=spec.id, name=spec.name, kind=spec.kind, url=spec.url,
                        link_selector=spec.link_selector, interval=spec.interval,
                        next_poll_at=first_poll(spec),
                    )
                )  # fmt: skip

    def spread_overdue(self, now: datetime, catch_up: Callable[[int, timedelta], datetime]) -> int:
        """Move the enabled sources overdue at ``now`` (after downtime) to
        ``catch_up(interval, how long overdue)``; returns how many there were."""
        with self._connection() as conn:
            overdue = conn.execute(
                select(_SOURCES.c.id, _SOURCES.c.interval, _SOURCES.c.next_poll_at).where(
                    _SOURCES.c.enabled, _SOURCES.c.next_poll_at < now
                )
            ).all()
            moved = 0
            for source_id, interval, due in overdue:
                # Still overdue: another instance's claim (a lease) is not moved.
                moved += conn.execute(
                    _SOURCES.update()
                    .where(_SOURCES.c.id == source_id, _SOURCES.c.next_poll_at < now)
                    .values(next_poll_at=catch_up(interval, now - (aware(due) or now)))
                ).rowcount
            return moved

    def make_new_due(self, now: datetime, first_poll_within: timedelta) -> None:
        """Make enabled sources never polled due now (``poll --once``: a new source's
        first poll waits up to ``first_poll_within`` of jitter, and a run from cron
        would miss it)."""
        with self._session() as s:
            s.execute(
                update(SourceRow)
                .where(
                    col(SourceRow.enabled),
                    col(SourceRow.last_polled_at).is_(None),
                    col(SourceRow.next_poll_at) > now,
                    # Not a claim's lease: another instance is polling it now.
                    col(SourceRow.next_poll_at) <= now + first_poll_within,
                )
                .values(next_poll_at=now)
                .execution_options(synchronize_session=False)
            )

    def make_all_due(self, now: datetime) -> None:
        """Make every enabled source due now (``poll --once --all``): the schedule,
        a backoff and a site's Retry-After are overridden."""
        with self._session() as s:
            s.execute(
                update(SourceRow)
                .where(col(SourceRow.enabled))
                .values(next_poll_at=now)
                .execution_options(synchronize_session=False)
            )

    def claim_due_sources(self, now: datetime, limit: int = 100) -> list[SourceState]:
        """Claim sources due at ``now``, most overdue first: each is handed to one caller.

        The claim moves ``next_poll_at`` to ``now + CLAIM_LEASE``, so the source is not
        due again until its poll is recorded, or the lease runs out if the poller dies.
        """
        with self._session() as s:
            # Core statements on the session's connection: no ORM objects are loaded,
            # so the ORM has nothing to track or synchronise.
            return claim_due(s.connection(), now, now + CLAIM_LEASE, limit)

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
        read_as: SourceSpec | None = None,
        refresh_hint: float | None = None,
    ) -> bool:
        """Record a good poll; True if the source was failing and has recovered.

        ``refresh_hint``: the feed's own (``<ttl>``), kept for the polls answered 304.

        With ``read_as`` (the source as the poll read it), the validators and the
        last success are recorded only if the source is still read that way.

        Raises:
            NoResultFound: the source is not in the table.
        """
        kept: dict[str, object] = {"last_success_at": now}
        if modified:
            hint = None if refresh_hint is None else round(refresh_hint)
            kept |= {"etag": etag, "last_modified": last_modified, "refresh_hint": hint}
        if read_as is not None:
            same = _read_as(read_as.url, read_as.kind, read_as.link_selector)
            kept = {k: case((same, v), else_=_SOURCES.c[k]) for k, v in kept.items()}
        values: dict[str, object] = kept | {
            "last_polled_at": now, "next_poll_at": next_poll, "held_until": None,
            "error_count": 0, "failing": False, "last_error": None,
            "items_seen": _SOURCES.c.items_seen + new_items,
        }  # fmt: skip
        # Core statements: one poll's bookkeeping, the ORM would load the whole row.
        with self._connection() as conn:
            recovered = conn.execute(
                select(_SOURCES.c.failing).where(_SOURCES.c.id == source_id)
            ).scalar_one()
            conn.execute(_SOURCES.update().where(_SOURCES.c.id == source_id).values(values))
            return bool(recovered)

    def record_not_modified(
        self, polls: Sequence[tuple[str, datetime]], now: datetime,
        read_as: Mapping[str, SourceSpec] | None = None,
    ) -> list[str]:  # fmt: skip
        """Record good polls answered 304 Not Modified: ``(source_id, next_poll)`` each.

        The same as ``record_success(source_id, now=now, next_poll=next_poll,
        etag=None, last_modified=None, new_items=0, modified=False,
        read_as=read_as.get(source_id))`` for each in turn, but in one transaction
        of two statements, not a transaction per source.
        Returns the ids of the sources that were failing and have recovered, once
        each, in the order of ``polls``.

        Raises:
            NoResultFound: a source id is not in the table (nothing is recorded).
        """
        if not polls:
            return []
        ids = list(dict.fromkeys(source_id for source_id, _ in polls))
        with self._session() as s:
            conn = s.connection()
            failing = _failing_among(conn, ids)
            plain = [{"source_id": sid, "next_poll": at, "now": now}
                     for sid, at in polls if sid not in (read_as or {})]  # fmt: skip
            if plain:
                conn.execute(_NOT_MODIFIED, plain)
            if read_as:
                conn.execute(_NOT_MODIFIED_READ_AS, [
                    {"source_id": sid, "next_poll": at, "now": now, "read_url": spec.url,
                     "read_kind": spec.kind, "read_selector": spec.link_selector}
                    for sid, at in polls if (spec := read_as.get(sid)) is not None
                ])  # fmt: skip
        return [sid for sid in ids if failing[sid]]

    def record_failure(
        self, source_id: str, *, now: datetime, next_poll: datetime, error: str, threshold: int,
        read_as: SourceSpec | None = None, held_until: datetime | None = None,
    ) -> bool:  # fmt: skip
        """Record a failed poll; True exactly when the source has just become failing.

        ``held_until``: the site's Retry-After, kept for a change of address on the
        same site. With ``read_as`` (the source as the poll read it), nothing is
        recorded if the source is no longer read that way: the old reading's error
        and backoff are not the new one's.
        """
        with self._session() as s:
            row = s.get_one(SourceRow, source_id, with_for_update=True)
            if read_as is not None and (row.url, row.kind, row.link_selector) != (
                read_as.url, read_as.kind, read_as.link_selector,
            ):  # fmt: skip
                return False
            row.last_polled_at, row.next_poll_at = now, next_poll
            row.held_until = held_until
            if held_until is not None:
                _hold_site(s, row, held_until)
            row.error_count += 1
            row.last_error = error
            newly = not row.failing and row.error_count >= threshold
            row.failing = row.failing or newly
            if row.failing:
                # The address it moved to may have been a site's mistake: retry at
                # the rules file's, which redirects again if the move was real.
                row.moved_to = None
            return newly

    def record_move(self, source_id: str, url: str, moved_to: str | None) -> bool:
        """The source at ``url`` (the rules file's address the poll was made for) has
        moved permanently to ``moved_to`` (None: back at ``url``); it is polled there
        from now on. False when the source's address is no longer ``url`` (the rules
        were reloaded during the poll) or ``moved_to`` is known already: nothing new."""
        with self._connection() as conn:
            changed = conn.execute(
                _SOURCES.update()
                .where(
                    _SOURCES.c.id == source_id,
                    _SOURCES.c.url == url,
                    _SOURCES.c.moved_to.is_distinct_from(moved_to),
                )
                .values(moved_to=moved_to)
            )
            return bool(changed.rowcount)

    def record_gap(
        self, source_id: str, now: datetime, entries: int, after: int, *, alert: bool
    ) -> bool:
        """A poll found all ``entries`` of the source new, ``after`` seconds after
        the good poll before: older items may have left the feed unseen.

        With ``alert``, True when the admins should hear of it: they were not told
        of a gap of this source within ``GAP_QUIET`` (a feed that turns over at
        every poll is reported once a day, not at every poll). Gaps recorded
        without ``alert`` do not count. The first statement decides and records
        at once, so that of two instances recording a gap together one is told.
        """
        values: dict[str, object] = {"gap_at": now, "gap_entries": entries, "gap_after": after}
        this_source = _SOURCES.c.id == source_id
        with self._connection() as conn:
            if alert:
                last = _SOURCES.c.gap_alerted_at
                told = conn.execute(
                    _SOURCES.update()
                    .where(this_source, last.is_(None) | (last <= now - GAP_QUIET))
                    .values(values | {"gap_alerted_at": now})
                )
                if told.rowcount:
                    return True
            conn.execute(_SOURCES.update().where(this_source).values(values))
            return False

    def source_health(self) -> list[SourceHealth]:
        with self._session() as s:
            rows = s.exec(select(SourceRow).where(col(SourceRow.enabled)).order_by(SourceRow.id))
            return [
                SourceHealth(
                    r.id, r.name, r.url, aware(r.last_success_at), r.last_error, r.error_count,
                    aware(r.next_poll_at), r.items_seen, r.failing, r.moved_to,
                    aware(r.gap_at), r.gap_entries, r.gap_after,
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


def _failing_among(conn: Connection, ids: Sequence[str]) -> dict[str, bool]:
    """Whether each source is failing now.

    Raises:
        NoResultFound: an id is not in the table, as ``record_success`` raises.
    """
    failing: dict[str, bool] = dict(
        conn.execute(
            select(col(SourceRow.id), col(SourceRow.failing)).where(col(SourceRow.id).in_(ids))
        ).all()
    )
    missing = [sid for sid in ids if sid not in failing]
    if missing:
        raise NoResultFound(f"no such source: {', '.join(missing)}")
    return failing
