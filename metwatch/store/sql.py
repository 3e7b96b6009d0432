"""SqlStore: the one implementation of ``ports.Store``, over SQLite or PostgreSQL.

Converts tables to ``metwatch.models`` objects at its boundary, keeps each
operation in one transaction, and wraps database failures that are not
programming errors (connection lost, database locked) as ``StoreError``.

Several instances may share one PostgreSQL database: ``claim_due_sources``
moves a source's ``next_poll_at`` forward with a compare-and-set, so exactly
one instance polls it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from metwatch.errors import StoreError
from metwatch.models import (
    Classified,
    Delivery,
    Evidence,
    Item,
    Match,
    SourceHealth,
    SourceSpec,
    SourceState,
    Story,
    StoryCoverage,
    StoryLink,
    StoryMember,
    assemble_text,
)
from metwatch.store.tables import (
    DeliveryRow,
    ItemRow,
    MatchRow,
    MetaRow,
    SourceRow,
    StoryItemRow,
    StoryRow,
    SubscriberRow,
    SubscriptionRow,
)

#: How long a claimed source stays claimed if its poller dies mid-poll.
CLAIM_LEASE = timedelta(minutes=10)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything metwatch stores is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class SqlStore:
    """Persistent state: sources, items, matches, stories, subscribers, outbox."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except OperationalError as e:
            # Connection lost, database locked or unreachable; not our bug.
            raise StoreError(f"database error: {str(e.orig).splitlines()[0]}") from e

    # -- sources ---------------------------------------------------------------

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

    # -- items, matches, stories ---------------------------------------------------

    def add_items(self, items: Iterable[Item], now: datetime) -> list[Item]:
        """Store items not seen before; return only the new ones, in input order.

        An item is not new when its id is known, or when another source already
        gave an item with the same canonical link (the same article in two feeds).
        A known item whose text changed is updated (an edited title is no new item).
        """
        items = list(items)
        if not items:
            return []
        new: list[Item] = []
        with self._session() as s:
            # Two IN queries per feed instead of two lookups per item.
            known = {
                row.id: row
                for row in s.exec(
                    select(ItemRow).where(col(ItemRow.id).in_([i.id for i in items]))
                )
            }
            urls = [i.url for i in items if i.url]
            seen_urls = (
                set(s.exec(select(ItemRow.url).where(col(ItemRow.url).in_(urls))))
                if urls
                else set()
            )
            for item in items:
                row = known.get(item.id)
                if row is not None:
                    if row.content_hash != item.content_hash:
                        row.title, row.summary, row.body = item.title, item.summary, item.body
                        row.content_hash = item.content_hash
                    continue
                if item.url and item.url in seen_urls:
                    continue
                row = _item_row(item, now)
                s.add(row)
                known[item.id] = row
                if item.url:
                    seen_urls.add(item.url)
                new.append(item)
        return new

    def set_item_text(self, item_id: str, *, title: str, body: str) -> None:
        """Replace a stored item's title and body (its article page's full text).

        ``content_hash`` is left as the feed gave it, so polling the same entry
        again is not taken for an edit.
        """
        with self._session() as s:
            row = s.get(ItemRow, item_id)
            if row is not None:
                row.title, row.body = title, body

    def iter_items(self, since: datetime | None = None, batch: int = 500) -> Iterator[Item]:
        """Every stored item (seen since ``since``), oldest first, read in batches."""
        offset = 0
        while True:
            with self._session() as s:
                query = select(ItemRow).order_by(col(ItemRow.seen_at), col(ItemRow.id))
                if since is not None:
                    query = query.where(col(ItemRow.seen_at) >= since)
                rows = s.exec(query.offset(offset).limit(batch)).all()
            yield from (_item(r) for r in rows)
            if len(rows) < batch:
                return
            offset += batch

    def count_items(self, since: datetime | None = None) -> int:
        with self._session() as s:
            query = select(func.count()).select_from(ItemRow)
            if since is not None:
                query = query.where(col(ItemRow.seen_at) >= since)
            return s.exec(query).one()

    def record_flagged(
        self,
        classified: Classified,
        story_id: int | None,
        now: datetime,
        *,
        fingerprint: str | None = None,
        copy_of: str | None = None,
        summary: Sequence[str] = (),
    ) -> int:
        """Write matches, the story and the outbox rows in ONE transaction.

        ``story_id`` joins an existing story (its revision goes up, so chats that
        already have it get an edit); None starts a new story with ``summary``.
        Returns the story id.
        """
        item = classified.item
        with self._session() as s:
            for m in classified.matches:
                s.add(_match_row(item.id, m))
            row = s.get(ItemRow, item.id)
            if row is not None:
                row.fingerprint = fingerprint
            story = s.get(StoryRow, story_id) if story_id is not None else None
            if story is None:
                story = StoryRow(
                    headline=item.title, first_seen=now, updated_at=now,
                    summary=json.dumps(list(summary)),
                )  # fmt: skip
                s.add(story)
                s.flush()
            else:
                story.revision += 1
                story.updated_at = now
            assert story.id is not None
            position = s.exec(select(func.count()).where(StoryItemRow.story_id == story.id)).one()
            s.add(
                StoryItemRow(
                    story_id=story.id, item_id=item.id, position=position, copy_of=copy_of
                )
            )
            self._enqueue(s, story, now)
            return story.id

    def story_coverage(self, since: datetime, limit: int = 200) -> list[StoryCoverage]:
        """Stories first seen since ``since``, with their members: clustering candidates.

        Three queries in all, however many stories there are.
        """
        with self._session() as s:
            stories = s.exec(
                select(StoryRow)
                .where(col(StoryRow.first_seen) >= since)
                .order_by(col(StoryRow.first_seen).desc())
                .limit(limit)
            ).all()
            ids = [st.id for st in stories]
            pairs = s.exec(
                select(StoryItemRow.story_id, ItemRow)
                .join(ItemRow, col(ItemRow.id) == col(StoryItemRow.item_id))
                .where(col(StoryItemRow.story_id).in_(ids))
            ).all()
            matches: dict[str, list[MatchRow]] = {}
            item_ids = [item.id for _, item in pairs]
            for m in s.exec(select(MatchRow).where(col(MatchRow.item_id).in_(item_ids))):
                matches.setdefault(m.item_id, []).append(m)
        members: dict[int, list[StoryMember]] = {}
        for story_id, item in pairs:
            members.setdefault(story_id, []).append(_member(item, matches.get(item.id, [])))
        return [
            StoryCoverage(st.id, aware(st.first_seen) or since, tuple(members.get(st.id, [])))
            for st in stories
            if st.id is not None
        ]

    def _enqueue(self, s: Session, story: StoryRow, now: datetime) -> None:
        assert story.id is not None
        targets = {
            t
            for m in s.exec(
                select(MatchRow)
                .join(StoryItemRow, col(StoryItemRow.item_id) == col(MatchRow.item_id))
                .where(StoryItemRow.story_id == story.id)
            )
            for t in (m.finding_id, m.topic_id)
        }
        chats = s.exec(
            select(SubscriptionRow.chat_id)
            .join(SubscriberRow, col(SubscriberRow.chat_id) == col(SubscriptionRow.chat_id))
            .where(col(SubscriberRow.active), col(SubscriptionRow.target).in_(targets))
            .distinct()
        ).all()
        existing = {
            d.chat_id: d
            for d in s.exec(select(DeliveryRow).where(DeliveryRow.story_id == story.id))
        }
        for chat_id in chats:
            row = existing.get(chat_id)
            if row is None:
                s.add(
                    DeliveryRow(
                        chat_id=chat_id, story_id=story.id, wanted_revision=story.revision,
                        created_at=now,
                    )
                )  # fmt: skip
            elif row.status in ("pending", "sent"):
                row.wanted_revision, row.status = story.revision, "pending"
                row.attempts, row.next_attempt_at = 0, None

    def story(self, story_id: int) -> Story:
        with self._session() as s:
            row = s.get_one(StoryRow, story_id)
            pairs = s.exec(
                select(ItemRow, StoryItemRow.copy_of)
                .join(StoryItemRow, col(StoryItemRow.item_id) == col(ItemRow.id))
                .where(StoryItemRow.story_id == story_id)
                .order_by(col(StoryItemRow.position))
            ).all()
            matches = s.exec(
                select(MatchRow).where(col(MatchRow.item_id).in_([i.id for i, _ in pairs]))
            ).all()
            return _story(row, pairs, matches)

    def recent_stories(self, limit: int = 5) -> list[Story]:
        with self._session() as s:
            ids = s.exec(
                select(StoryRow.id).order_by(col(StoryRow.updated_at).desc()).limit(limit)
            )
            wanted = [i for i in ids if i is not None]
        return [self.story(i) for i in wanted]

    # -- subscribers -----------------------------------------------------------------

    def subscribe(
        self, chat_id: int, targets: Iterable[str], now: datetime, *, chat_type: str = "private"
    ) -> None:
        """Activate a chat and make it follow ``targets`` (added to what it follows)."""
        with self._session() as s:
            row = s.get(SubscriberRow, chat_id)
            if row is None:
                s.add(SubscriberRow(chat_id=chat_id, chat_type=chat_type, created_at=now))
            else:
                row.active, row.deactivated_reason = True, None
            for target in targets:
                if s.get(SubscriptionRow, (chat_id, target)) is None:
                    s.add(SubscriptionRow(chat_id=chat_id, target=target))

    def unsubscribe(self, chat_id: int, reason: str = "unsubscribed") -> None:
        """Stop all messages to a chat; nothing pending for it is sent."""
        with self._session() as s:
            row = s.get(SubscriberRow, chat_id)
            if row is not None:
                row.active, row.deactivated_reason = False, reason
            for d in s.exec(
                select(DeliveryRow).where(
                    DeliveryRow.chat_id == chat_id, DeliveryRow.status == "pending"
                )
            ):
                d.status = "cancelled"

    def is_active(self, chat_id: int) -> bool:
        with self._session() as s:
            row = s.get(SubscriberRow, chat_id)
            return bool(row and row.active)

    def followed_targets(self) -> dict[str, int]:
        """Each followed topic or finding id, with how many active chats follow it."""
        with self._session() as s:
            rows = s.exec(
                select(SubscriptionRow.target, func.count())
                .join(SubscriberRow, col(SubscriberRow.chat_id) == col(SubscriptionRow.chat_id))
                .where(col(SubscriberRow.active))
                .group_by(col(SubscriptionRow.target))
            ).all()
            return {target: n for target, n in rows}

    def follows(self, chat_id: int) -> set[str]:
        with self._session() as s:
            return set(
                s.exec(select(SubscriptionRow.target).where(SubscriptionRow.chat_id == chat_id))
            )

    def migrate_chat(self, old_id: int, new_id: int) -> None:
        """A group became a supergroup: move the subscriber, follows and outbox.

        The new chat may already be subscribed (someone sent /start there): then
        the two are merged, and a story either chat already has is not owed twice.
        """
        with self._session() as s:
            old = s.get(SubscriberRow, old_id)
            if old is None:
                return
            if s.get(SubscriberRow, new_id) is None:
                s.add(
                    SubscriberRow(
                        chat_id=new_id, chat_type="supergroup", title=old.title,
                        created_at=old.created_at, mode=old.mode, digest_hour=old.digest_hour,
                        paused_until=old.paused_until, quiet_start=old.quiet_start,
                        quiet_end=old.quiet_end, last_digest_at=old.last_digest_at,
                    )
                )  # fmt: skip
            for sub in s.exec(select(SubscriptionRow).where(SubscriptionRow.chat_id == old_id)):
                if s.get(SubscriptionRow, (new_id, sub.target)) is None:
                    s.add(SubscriptionRow(chat_id=new_id, target=sub.target))
                s.delete(sub)
            owed = {
                d.story_id
                for d in s.exec(select(DeliveryRow).where(DeliveryRow.chat_id == new_id))
            }
            for d in s.exec(select(DeliveryRow).where(DeliveryRow.chat_id == old_id)):
                if d.story_id in owed:
                    s.delete(d)
                else:
                    d.chat_id = new_id
            s.flush()
            s.delete(old)

    def export_subscribers(self) -> list[dict[str, Any]]:
        """Subscribers and what they follow, as plain JSON-ready data (backups)."""
        with self._session() as s:
            follows: dict[int, list[str]] = {}
            for sub in s.exec(select(SubscriptionRow).order_by(col(SubscriptionRow.target))):
                follows.setdefault(sub.chat_id, []).append(sub.target)
            return [
                {
                    "chat_id": r.chat_id, "chat_type": r.chat_type, "title": r.title,
                    "active": r.active, "created_at": r.created_at.isoformat(),
                    "deactivated_reason": r.deactivated_reason,
                    "follows": follows.get(r.chat_id, []),
                }
                for r in s.exec(select(SubscriberRow).order_by(col(SubscriberRow.chat_id)))
            ]  # fmt: skip

    def import_subscribers(self, records: Iterable[dict[str, Any]]) -> int:
        """Restore subscribers from ``export_subscribers`` data; existing chats are updated."""
        count = 0
        with self._session() as s:
            for rec in records:
                row = s.get(SubscriberRow, rec["chat_id"]) or SubscriberRow(
                    chat_id=rec["chat_id"], created_at=datetime.fromisoformat(rec["created_at"])
                )
                row.chat_type, row.title = rec.get("chat_type", "private"), rec.get("title")
                row.active = rec.get("active", True)
                row.deactivated_reason = rec.get("deactivated_reason")
                s.add(row)
                for target in rec.get("follows", []):
                    if s.get(SubscriptionRow, (row.chat_id, target)) is None:
                        s.add(SubscriptionRow(chat_id=row.chat_id, target=target))
                count += 1
        return count

    # -- outbox ----------------------------------------------------------------------

    def pending_deliveries(self, now: datetime, limit: int = 100) -> list[Delivery]:
        with self._session() as s:
            rows = s.exec(
                select(DeliveryRow)
                .where(DeliveryRow.status == "pending")
                .where(
                    (col(DeliveryRow.next_attempt_at).is_(None))
                    | (col(DeliveryRow.next_attempt_at) <= now)
                )
                .order_by(col(DeliveryRow.id))
                .limit(limit)
            ).all()
            return [
                Delivery(
                    r.id or 0, r.chat_id, r.story_id, r.wanted_revision, r.message_id, r.attempts
                )
                for r in rows
            ]

    def mark_sent(
        self, delivery_id: int, *, revision: int, message_id: int, now: datetime
    ) -> None:
        with self._session() as s:
            row = s.get_one(DeliveryRow, delivery_id)
            row.sent_revision = max(row.sent_revision, revision)
            row.message_id = message_id
            row.status = "sent" if row.sent_revision >= row.wanted_revision else "pending"
            row.attempts, row.last_error, row.next_attempt_at = 0, None, None
            row.sent_at = now

    def mark_retry(self, delivery_id: int, *, error: str, retry_at: datetime) -> int:
        """Keep the delivery and try again at ``retry_at``; returns the attempt count."""
        with self._session() as s:
            row = s.get_one(DeliveryRow, delivery_id)
            row.attempts += 1
            row.last_error, row.next_attempt_at = error, retry_at
            return row.attempts

    def mark_failed(self, delivery_id: int, *, error: str) -> None:
        with self._session() as s:
            row = s.get_one(DeliveryRow, delivery_id)
            row.status, row.last_error = "failed", error

    def outbox_counts(self) -> dict[str, int]:
        with self._session() as s:
            rows = s.exec(
                select(DeliveryRow.status, func.count()).group_by(col(DeliveryRow.status))
            ).all()
            return {status: n for status, n in rows}

    # -- meta ------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._session() as s:
            row = s.get(MetaRow, key)
            return row.value if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._session() as s:
            row = s.get(MetaRow, key)
            if row is None:
                s.add(MetaRow(key=key, value=value))
            else:
                row.value = value


def _item_row(item: Item, now: datetime) -> ItemRow:
    return ItemRow(
        id=item.id, source_id=item.source_id, outlet=item.outlet, url=item.url,
        title=item.title, summary=item.summary, body=item.body, published=item.published,
        seen_at=now, content_hash=item.content_hash,
    )  # fmt: skip


def _member(item: ItemRow, matches: Sequence[MatchRow]) -> StoryMember:
    return StoryMember(
        item.id, item.fingerprint, assemble_text(item.title, item.summary, item.body),
        frozenset(m.finding_id for m in matches if not m.topic_only),
        frozenset(m.topic_id for m in matches),
        aware(item.published) or aware(item.seen_at) or datetime.now(UTC),
    )  # fmt: skip


def _item(row: ItemRow) -> Item:
    return Item(
        row.id, row.source_id, row.outlet, row.url, row.title, row.summary, row.body,
        aware(row.published), row.content_hash,
    )  # fmt: skip


def _match_row(item_id: str, m: Match) -> MatchRow:
    evidence = [{"sentence": e.sentence, "start": e.start, "end": e.end} for e in m.evidence]
    return MatchRow(
        item_id=item_id, finding_id=m.finding_id, topic_id=m.topic_id, title=m.title,
        topic_only=m.topic_only, score=m.score, evidence=json.dumps(evidence),
    )  # fmt: skip


def _match(row: MatchRow) -> Match:
    evidence = tuple(Evidence(**e) for e in json.loads(row.evidence))
    return Match(row.finding_id, row.topic_id, row.title, row.score, evidence, row.topic_only)


def _story(
    row: StoryRow, pairs: Sequence[tuple[ItemRow, str | None]], matches: Sequence[MatchRow]
) -> Story:
    items = [item for item, _ in pairs]
    order = {item.id: n for n, item in enumerate(items)}
    merged: dict[str, Match] = {}
    for m in sorted(matches, key=lambda m: order[m.item_id]):
        merged.setdefault(m.finding_id, _match(m))
    real_topics = {m.topic_id for m in merged.values() if not m.topic_only}
    kept = tuple(m for m in merged.values() if not (m.topic_only and m.topic_id in real_topics))
    links = tuple(
        StoryLink(i.id, i.outlet, i.title, i.url, aware(i.published), copy_of)
        for i, copy_of in pairs
    )
    summary = tuple(json.loads(row.summary)) if row.summary else ()
    first_seen = aware(row.first_seen)
    assert row.id is not None
    assert first_seen is not None
    return Story(row.id, row.headline, summary, links, kept, first_seen, row.revision)
