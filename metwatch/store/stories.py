"""Matches and stories, and the outbox rows a flagged item creates.

``filing_stories`` writes a poll's flagged items (with their matches, stories
and one delivery per following chat) and its other new items in ONE transaction:
a crash never leaves a match without its deliveries, nor half a poll stored.
As for the other items, the same article (its canonical link) is stored once:
a flagged item whose link another item got stored with meanwhile is not filed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, or_
from sqlmodel import col, select

from metwatch.models import (
    Classified,
    Evidence,
    Item,
    Match,
    Story,
    StoryCoverage,
    StoryLink,
    StoryMember,
    assemble_text,
)
from metwatch.store.base import aware
from metwatch.store.items import (
    ITEMS,
    ItemEdit,
    ItemStore,
    apply_edits,
    insert_new_items,
    item_values,
)
from metwatch.store.tables import (
    CounterRow,
    DeliveryRow,
    ItemRow,
    MatchRow,
    StoryItemRow,
    StoryRow,
    SubscriberRow,
    SubscriptionRow,
)

_MATCHES: Table = MatchRow.__table__  # type: ignore[attr-defined]
_STORIES: Table = StoryRow.__table__  # type: ignore[attr-defined]
_STORY_ITEMS: Table = StoryItemRow.__table__  # type: ignore[attr-defined]
_DELIVERIES: Table = DeliveryRow.__table__  # type: ignore[attr-defined]
#: The active chats following a finding or a topic of any match of a story.
_STORY_TARGETS = (
    select(MatchRow.finding_id)
    .join(StoryItemRow, col(StoryItemRow.item_id) == col(MatchRow.item_id))
    .where(StoryItemRow.story_id == bindparam("story_id"))
    .union(
        select(MatchRow.topic_id)
        .join(StoryItemRow, col(StoryItemRow.item_id) == col(MatchRow.item_id))
        .where(StoryItemRow.story_id == bindparam("story_id"))
    )
)
_FOLLOWERS = (
    select(SubscriptionRow.chat_id)
    .join(SubscriberRow, col(SubscriberRow.chat_id) == col(SubscriptionRow.chat_id))
    .where(col(SubscriberRow.active), col(SubscriptionRow.target).in_(_STORY_TARGETS))
    .distinct()
)
_COUNTERS: Table = CounterRow.__table__  # type: ignore[attr-defined]
#: Every write to the stories raises this count, in the same transaction.
_CHANGES = select(_COUNTERS.c.value).where(_COUNTERS.c.name == "stories")
_COUNT_A_CHANGE = (
    _COUNTERS.update()
    .where(_COUNTERS.c.name == "stories")
    .values(value=_COUNTERS.c.value + 1)
    .returning(_COUNTERS.c.value)
)
#: ... only if it still is what the caller saw (no row back: it is not).
_COUNT_A_CHANGE_ON = (
    _COUNTERS.update()
    .where(_COUNTERS.c.name == "stories", _COUNTERS.c.value == bindparam("seen"))
    .values(value=_COUNTERS.c.value + 1)
    .returning(_COUNTERS.c.value)
)
#: A member joins a story, after those it has.
_JOIN_STORY = _STORY_ITEMS.insert().values(
    story_id=bindparam("story_id"),
    item_id=bindparam("item_id"),
    copy_of=bindparam("copy_of"),
    position=select(func.count())
    .where(_STORY_ITEMS.c.story_id == bindparam("story_id"))
    .scalar_subquery(),
)
#: Another item stored with this canonical link, and the story it is in (if any).
_STORED_COPY = (
    select(ITEMS.c.id, _STORY_ITEMS.c.story_id)
    .select_from(ITEMS.outerjoin(_STORY_ITEMS, _STORY_ITEMS.c.item_id == ITEMS.c.id))
    .where(ITEMS.c.url == bindparam("url"), ITEMS.c.id != bindparam("item_id"))
    .order_by(_STORY_ITEMS.c.story_id.is_(None))  # a filed one first
    .limit(1)
)
#: The story an item is filed under, if it is.
_FILED = select(_STORY_ITEMS.c.story_id).where(_STORY_ITEMS.c.item_id == bindparam("item_id"))
#: Whether an item is stored.
_IS_STORED = select(ITEMS.c.id).where(ITEMS.c.id == bindparam("item_id"))
#: The findings and topics of the matches of a story's items.
_STORY_TARGET_IDS = (
    select(_MATCHES.c.finding_id, _MATCHES.c.topic_id)
    .join(_STORY_ITEMS, _STORY_ITEMS.c.item_id == _MATCHES.c.item_id)
    .where(_STORY_ITEMS.c.story_id == bindparam("story_id"))
)
#: The findings and topics an item is stored with matches of.
_ITEM_TARGETS = select(_MATCHES.c.finding_id, _MATCHES.c.topic_id).where(
    _MATCHES.c.item_id == bindparam("item_id")
)
_FIRST_SEEN = select(_STORIES.c.first_seen).where(_STORIES.c.id == bindparam("story_id"))
_SET_FINGERPRINT = (
    ITEMS.update()
    .where(ITEMS.c.id == bindparam("item_id"))
    .values(fingerprint=bindparam("new_fingerprint"))
)
_RAISE_REVISION = (
    _STORIES.update()
    .where(_STORIES.c.id == bindparam("story_id"))
    .values(revision=_STORIES.c.revision + 1, updated_at=bindparam("now"))
    .returning(_STORIES.c.revision)
)
_NEW_STORY = (
    _STORIES.insert()
    .values(headline=bindparam("headline"), first_seen=bindparam("now"),
            updated_at=bindparam("now"), revision=1, summary=bindparam("summary"))
    .returning(_STORIES.c.id)
)  # fmt: skip
#: (id, revision) of the newest stories.
_RECENT_REVISIONS = (
    select(_STORIES.c.id, _STORIES.c.revision)
    .order_by(_STORIES.c.first_seen.desc(), _STORIES.c.id.desc())
    .limit(bindparam("limit"))
)


log = logging.getLogger(__name__)


class StoriesChanged(Exception):  # noqa: N818 (a signal to retry, not a failure)
    """Recent stories changed since the caller read them: decide again."""


class StoryFiling:
    """Writes within ``StoryStore.filing_stories``' transaction: the store's own
    handle on it, so it uses the store's statements."""

    def __init__(self, store: StoryStore, s: Connection, now: datetime, changes: int) -> None:
        self._store = store
        self._s = s
        self._now = now
        #: ``story_changes`` as this transaction leaves it (the next ``decided_on``).
        self.changes = changes
        #: Stories first seen before this are given findings without telling anyone
        #: (``add_findings``); None: always told.
        self.tell_since: datetime | None = None
        #: The filed items given findings in this transaction, with those findings.
        self.given: list[Classified] = []

    def file(
        self, classified: Classified, story_id: int | None, *, fingerprint: str | None,
        copy_of: str | None, summary: Sequence[str],
    ) -> int | None:  # fmt: skip
        """Store the item with its matches under ``story_id`` (None: a new story
        with ``summary``) and owe the story's new revision to its followers.
        Returns the story id.

        An item whose canonical link another item was stored with (by another
        poll of this tick or another instance, after both found it new) is not
        filed: the article is stored once, as ``insert_items`` stores it. Then
        nothing is written for it, and None is returned. (Unless the item is
        stored too, and neither is filed: see ``_both_stored_unfiled``.)
        """
        # Core statements, not the ORM's unit of work: this runs for every flagged
        # item, and the ORM cost several times the SQL here.
        s, store, now, item = self._s, self._store, self._now, classified.item
        # Within the transaction that holds the stories' counter: a filing that
        # stored the link in between has committed (PostgreSQL) or held the
        # database (SQLite) before this look-up.
        copy = {"url": item.url, "item_id": item.id}
        stored = s.execute(_STORED_COPY, copy).first() if item.url else None
        if stored is not None and not self._both_stored_unfiled(item.id, stored.story_id):
            log.info(
                "item %s not filed: the same article is stored as item %s (story %s)",
                item.id, stored.id, stored.story_id,
            )  # fmt: skip
            return None
        if s.execute(_FILED, {"item_id": item.id}).first() is not None:
            # Filed already: another poll of this tick (or another instance) found
            # the same stored item unflagged and filed it, from its own feed's edit
            # or another feed's copy. Its alert is owed once; what this text
            # states beyond the other's is given to its story.
            log.info("item %s not filed: it is in a story already", item.id)
            self.add_findings(classified, fingerprint)
            return None
        # Stored here, with its matches: never one without the other. An item
        # stored already (a replay) only gets its fingerprint.
        s.execute(
            store._insert_flagged_item,
            {**item_values(item, now), "fingerprint": fingerprint},
        )
        if classified.matches:
            s.execute(_MATCHES.insert(), [_match_values(item.id, m) for m in classified.matches])
        story, revision = _story_for(s, story_id, item.title, summary, now)
        s.execute(_JOIN_STORY, {"story_id": story, "item_id": item.id, "copy_of": copy_of})
        store._enqueue(s, story, revision, now)
        return story

    def add_findings(self, classified: Classified, fingerprint: str | None) -> None:
        """Give an item filed already (edited at the source) those of
        ``classified``'s matches it is not stored with (``given`` records them).

        If they add a finding or topic to its story, its new revision is owed to
        its followers, as when an item joins it: followers of a new finding are
        sent the story, chats that have it see it updated. Not if its story was
        first seen before ``tell_since``, or has them already (from another
        member): what the chats have then is unchanged.

        A finding is new if the item has no match of it; a topic-only match, if
        the item has no match in that topic. The item's ``fingerprint`` follows
        its new text, for later clustering (None: its text is not written).
        """
        s, item = self._s, classified.item
        story_id = s.execute(_FILED, {"item_id": item.id}).scalar_one_or_none()
        if story_id is None:
            return
        # Read again in this transaction: another poll may have given them.
        stored = {t for row in s.execute(_ITEM_TARGETS, {"item_id": item.id}) for t in row}
        new = tuple(m for m in classified.matches if m.finding_id not in stored)
        if not new:
            return
        in_story = {t for row in s.execute(_STORY_TARGET_IDS, {"story_id": story_id}) for t in row}
        s.execute(_MATCHES.insert(), [_match_values(item.id, m) for m in new])
        if fingerprint is not None:
            s.execute(_SET_FINGERPRINT, {"item_id": item.id, "new_fingerprint": fingerprint})
        self.given.append(Classified(item, new))
        first_seen = aware(s.execute(_FIRST_SEEN, {"story_id": story_id}).scalar_one())
        recent = self.tell_since is None or (first_seen or self.tell_since) >= self.tell_since
        if recent and any(m.finding_id not in in_story for m in new):
            revision = s.execute(_RAISE_REVISION, {"story_id": story_id, "now": self._now})
            self._store._enqueue(s, story_id, revision.scalar_one(), self._now)

    def _both_stored_unfiled(self, item_id: str, other_story: int | None) -> bool:
        """Whether an item and another with its link are both stored, neither filed.

        Two instances can store one article under two ids at once (each found
        it new); a version judged later (an edit, another feed's copy) is then
        filed under one of them, rather than under neither.
        """
        return (
            other_story is None
            and self._s.execute(_IS_STORED, {"item_id": item_id}).first() is not None
        )

    def insert_items(self, items: Sequence[Item], *, edits: Sequence[ItemEdit] = ()) -> None:
        """``ItemStore.insert_items``, in this transaction."""
        apply_edits(self._s, edits)
        insert_new_items(self._s, self._store._insert_item, items, self._now)


class StoryStore(ItemStore):
    """Flagged items' matches, the stories they form and who is owed them."""

    def record_flagged(
        self,
        classified: Classified,
        story_id: int | None,
        now: datetime,
        *,
        fingerprint: str | None = None,
        copy_of: str | None = None,
        summary: Sequence[str] = (),
        decided_on: int | None = None,
    ) -> int | None:
        """Write matches, the story and the outbox rows in ONE transaction.

        ``story_id`` joins an existing story (its revision goes up, so chats that
        already have it get an edit); None starts a new story with ``summary``.
        ``decided_on``: as for ``filing_stories``. Returns the story id (None:
        the article is stored already, ``StoryFiling.file``).
        """
        with self.filing_stories(now, decided_on=decided_on) as filing:
            return filing.file(
                classified, story_id, fingerprint=fingerprint, copy_of=copy_of, summary=summary
            )

    @contextmanager
    def filing_stories(self, now: datetime, *, decided_on: int | None) -> Iterator[StoryFiling]:
        """ONE transaction for filing flagged items (and storing a poll's other new
        items), counted as one change to the stories.

        ``decided_on``: the ``story_changes`` the decisions are made on. If the
        stories have changed since (another instance filed an item), nothing is
        written and ``StoriesChanged`` is raised on entry, so that two instances
        never open two stories for one event; None files regardless.
        """
        with self._connection() as s:
            # First, so the transaction holds the counter's row from the start:
            # another instance's filing waits for this one, then finds the count
            # changed.
            counted = (
                s.execute(_COUNT_A_CHANGE)
                if decided_on is None
                else s.execute(_COUNT_A_CHANGE_ON, {"seen": decided_on})
            )
            changes = counted.scalar_one_or_none()
            if changes is None:
                raise StoriesChanged
            yield StoryFiling(self, s, now, changes)

    def story_changes(self) -> int:
        """How many times the stories have been written: read it before the stories
        a clustering decision is made on, and pass it as ``decided_on``."""
        with self._connection() as s:
            return int(s.execute(_CHANGES).scalar_one())

    def recent_story_revisions(self, limit: int = 200) -> list[tuple[int, int]]:
        """(story id, revision) of the ``limit`` newest stories by first seen.

        An in-memory index of candidates reloads only the stories whose revision
        it does not hold (another instance added to them, or opened them); it asks
        when ``story_changes`` says the stories changed under it.
        """
        with self._connection() as s:
            return _recent_revisions(s, limit)

    def story_coverage(self, story_ids: Sequence[int]) -> list[StoryCoverage]:
        """These stories with their members, as clustering candidates.

        Three queries in all, however many stories there are.
        """
        if not story_ids:
            return []
        with self._session() as s:
            stories = s.exec(select(StoryRow).where(col(StoryRow.id).in_(story_ids))).all()
            pairs = s.exec(
                select(StoryItemRow.story_id, ItemRow)
                .join(ItemRow, col(ItemRow.id) == col(StoryItemRow.item_id))
                .where(col(StoryItemRow.story_id).in_(story_ids))
                .order_by(col(StoryItemRow.position))
            ).all()
            matches: dict[str, list[MatchRow]] = {}
            item_ids = [item.id for _, item in pairs]
            for m in s.exec(select(MatchRow).where(col(MatchRow.item_id).in_(item_ids))):
                matches.setdefault(m.item_id, []).append(m)
        members: dict[int, list[StoryMember]] = {}
        for story_id, item in pairs:
            members.setdefault(story_id, []).append(_member(item, matches.get(item.id, [])))
        return [
            StoryCoverage(
                st.id,
                aware(st.first_seen) or datetime.now(UTC),
                tuple(members.get(st.id, [])),
                st.revision,
            )  # fmt: skip
            for st in stories
            if st.id is not None
        ]

    def _enqueue(self, s: Connection, story_id: int, revision: int, now: datetime) -> None:
        """Owe ``revision`` of the story to every active chat following one of its
        findings or topics: a new outbox row, or a row sent or pending raised to it."""
        chats = s.execute(_FOLLOWERS, {"story_id": story_id}).scalars().all()
        if not chats:
            return
        rows = [
            {"chat_id": chat_id, "story_id": story_id, "wanted_revision": revision,
             "created_at": now, "sent_revision": 0, "status": "pending", "attempts": 0}
            for chat_id in chats
        ]  # fmt: skip
        s.execute(self._owe_deliveries, rows)

    @cached_property
    def _owe_deliveries(self) -> Any:
        """INSERT into the outbox, or raise a pending or sent row to the revision."""
        return self._upsert(
            _DELIVERIES, index_elements=["chat_id", "story_id"], from_row=("wanted_revision",),
            set_={"status": "pending", "attempts": 0, "next_attempt_at": None},
            # Failed and cancelled rows keep their status: an edit must not revive
            # them. (Not IN: an expanding parameter cannot go with executemany.)
            where=or_(_DELIVERIES.c.status == "pending", _DELIVERIES.c.status == "sent"),
        )  # fmt: skip

    @cached_property
    def _insert_flagged_item(self) -> Any:
        """INSERT into items; an item stored already (a replay) gets its fingerprint."""
        return self._upsert(ITEMS, index_elements=["id"], from_row=("fingerprint",))

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


def _story_for(
    s: Connection, story_id: int | None, headline: str, summary: Sequence[str],
    now: datetime,
) -> tuple[int, int]:  # fmt: skip
    """(id, revision) of the story an item joins: ``story_id`` with its revision
    raised, or a new story when it is None (or gone)."""
    if story_id is not None:
        raising = s.execute(_RAISE_REVISION, {"story_id": story_id, "now": now})
        if (raised := raising.scalar_one_or_none()) is not None:
            return story_id, raised
    new_id = s.execute(
        _NEW_STORY, {"headline": headline, "now": now, "summary": json.dumps(list(summary))}
    ).scalar_one()
    return new_id, 1


def _recent_revisions(s: Connection, limit: int) -> list[tuple[int, int]]:
    rows = s.execute(_RECENT_REVISIONS, {"limit": limit})
    return [(story_id, revision) for story_id, revision in rows]


def _member(item: ItemRow, matches: Sequence[MatchRow]) -> StoryMember:
    return StoryMember(
        item.id, item.fingerprint, assemble_text(item.title, item.summary, item.body),
        frozenset(m.finding_id for m in matches if not m.topic_only),
        frozenset(m.topic_id for m in matches),
        aware(item.published) or aware(item.seen_at) or datetime.now(UTC),
    )  # fmt: skip


def _match_values(item_id: str, m: Match) -> dict[str, object]:
    evidence = [{"sentence": e.sentence, "start": e.start, "end": e.end} for e in m.evidence]
    return {
        "item_id": item_id, "finding_id": m.finding_id, "topic_id": m.topic_id,
        "title": m.title, "topic_only": m.topic_only, "score": m.score,
        "evidence": json.dumps(evidence),
    }  # fmt: skip


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
        StoryLink(i.id, i.outlet, i.title, i.link or i.url, aware(i.published), copy_of)
        for i, copy_of in pairs
    )
    summary = tuple(json.loads(row.summary)) if row.summary else ()
    first_seen = aware(row.first_seen)
    assert row.id is not None
    assert first_seen is not None
    return Story(row.id, row.headline, summary, links, kept, first_seen, row.revision)
