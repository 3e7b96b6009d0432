"""Items: what is new in a feed, storing the unflagged ones, reading them back.

Flagged items are stored with their matches and story (``metwatch.store.stories``),
so a crash between storing and classifying cannot lose an alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Boolean, Connection, Table, bindparam, exists, func, or_
from sqlmodel import col, select

from metwatch.models import Item
from metwatch.store.base import StoreBase, aware
from metwatch.store.tables import CounterRow, ItemRow, MatchRow

ITEMS: Table = ItemRow.__table__  # type: ignore[attr-defined]
_MATCHES: Table = MatchRow.__table__  # type: ignore[attr-defined]
_COUNTERS: Table = CounterRow.__table__  # type: ignore[attr-defined]
#: Values per IN (...) look-up.
LOOKUP_CHUNK = 1000
#: Stored items (the ``url`` look-up is added by the caller).
_STORED_BY_URL = select(ITEMS.c.id, ITEMS.c.url, ITEMS.c.content_hash)
#: Held by a transaction that stores new items, till it ends: the stories' counter
#: row, which ``StoryStore.filing_stories`` holds for the same time (PostgreSQL;
#: SQLite's writers hold the whole database already). So two instances that both
#: found one article new store it once: the second looks up its link after the
#: first has committed. (Without it, each would store it under its own id.)
_HOLD_ITEM_WRITES = (
    select(_COUNTERS.c.value).where(_COUNTERS.c.name == "stories").with_for_update()
)
#: An item's text after an edit at the source (executed with ``_edit_values``).
_EDIT_ITEM = (
    ITEMS.update()
    .where(
        ITEMS.c.id == bindparam("item_id"),
        # False: only if the item is not flagged (``ItemEdit.if_unflagged``).
        or_(
            bindparam("even_if_flagged", type_=Boolean),
            ~exists().where(_MATCHES.c.item_id == ITEMS.c.id),
        ),
    )
    .values(
        title=bindparam("new_title"), summary=bindparam("new_summary"),
        # None: the stored body stays (the article's text, fetched for a teaser).
        body=func.coalesce(bindparam("new_body"), ITEMS.c.body),
        content_hash=func.coalesce(bindparam("new_hash"), ITEMS.c.content_hash),
    )
)  # fmt: skip


class ItemStore(StoreBase):
    """The items table: look-ups of what is new, inserts, reading back."""

    def sort_new(self, items: Iterable[Item]) -> list[Item]:
        """The items not stored yet, in input order; known items whose text
        changed are updated at once (``sort_items`` leaves that to the caller)."""
        found = self.sort_items(items)
        if found.edited:
            with self._connection() as s:
                apply_edits(s, [ItemEdit(i) for i in found.edited])
        return list(found.new)

    def sort_items(self, items: Iterable[Item]) -> SortedItems:
        """Which of a feed's items are new, and which stored ones were edited at
        the source (nothing is written).

        An item is not new when its id is known, or when another source already
        gave an item with the same canonical link (the same article in two feeds).
        A known item whose text changed is an edit (an edited title is no new
        item). An item under another id whose article is stored with other text
        is a copy: the caller may judge its text too. Two IN queries per feed,
        not two lookups per item; a third, over the copies only, finds their
        stored articles; a fourth, over the edited items and those articles,
        tells which of them were flagged, and for what.
        """
        items = list(items)
        if not items:
            return SortedItems()
        new: list[Item] = []
        edited: list[Item] = []
        matched: dict[str, set[str]] = {}
        with self._connection() as s:
            # Ids and hashes only: most of a feed is known, and its text is not needed.
            known: dict[str, str] = {}
            for ids in _chunks([i.id for i in items]):
                known.update(
                    (row.id, row.content_hash)
                    for row in s.execute(
                        select(ITEMS.c.id, ITEMS.c.content_hash).where(ITEMS.c.id.in_(ids))
                    )
                )  # fmt: skip
            stored_urls = _stored_urls(s, [i.url for i in items if i.url])
            seen_urls = set(stored_urls)
            other_copies: list[Item] = []
            for item in items:
                if item.id in known:
                    if known[item.id] != item.content_hash:
                        edited.append(item)
                elif not (item.url and item.url in seen_urls):
                    new.append(item)
                    if item.url:
                        seen_urls.add(item.url)
                elif item.url in stored_urls:
                    other_copies.append(item)
            # (A copy of an article this feed lists under its own id is the feed's
            # repeat, not another feed's version.)
            copies = tuple(c for c in _copies(s, other_copies) if c.stored_id not in known)
            for ids in _chunks([i.id for i in edited] + [c.stored_id for c in copies]):
                for item_id, finding_id, topic_id in s.execute(
                    select(_MATCHES.c.item_id, _MATCHES.c.finding_id, _MATCHES.c.topic_id)
                    .where(_MATCHES.c.item_id.in_(ids))
                ):  # fmt: skip
                    matched.setdefault(item_id, set()).update((finding_id, topic_id))
        return SortedItems(
            tuple(new), tuple(edited), {k: frozenset(v) for k, v in matched.items()}, copies
        )

    def has_items_from(self, source_id: str) -> bool:
        """Whether any stored item came first from this source."""
        with self._connection() as s:
            found = s.execute(select(ITEMS.c.id).where(ITEMS.c.source_id == source_id).limit(1))
            return found.first() is not None

    def add_items(self, items: Iterable[Item], now: datetime) -> list[Item]:
        """Store the items ``sort_new`` finds new (and its edits); return the new
        ones, in input order."""
        new = self.sort_new(items)
        self.insert_items(new, now)
        return new

    def insert_items(
        self, items: Sequence[Item], now: datetime, *, edits: Sequence[ItemEdit] = ()
    ) -> None:
        """Store items ``sort_items`` has just found new, without asking again, and
        its ``edits``, in one transaction.

        One multi-row INSERT (Core: the ORM's unit of work costs more than the
        insert for rows nothing else touches). What was stored in the meantime,
        by another poll of this tick or another instance, is skipped: an id with
        ON CONFLICT, a canonical link by one look-up of links, made once any other
        instance storing items has committed (``_HOLD_ITEM_WRITES``).
        """
        if items or edits:
            with self._connection() as s:
                if items:
                    # First: a filing holds it, then locks the rows of its edits.
                    s.execute(_HOLD_ITEM_WRITES)
                apply_edits(s, edits)
                insert_new_items(s, self._insert_item, items, now)

    @cached_property
    def _insert_item(self) -> Any:
        """INSERT into items, doing nothing for an id stored already."""
        return self._upsert(ITEMS, index_elements=["id"])

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


@dataclass(frozen=True, slots=True)
class SortedItems:
    """A feed's items as the store sees them (``ItemStore.sort_items``), in feed order."""

    #: Not stored yet.
    new: tuple[Item, ...] = ()
    #: Stored, with other text at the source now: to be written with the poll.
    edited: tuple[Item, ...] = ()
    #: The ids each flagged edited item (or copy's stored article) is stored with
    #: a match of: its findings and their topics (a topic-only match's id is its
    #: topic's). One absent here was not flagged.
    matched: Mapping[str, frozenset[str]] = field(default_factory=dict)

    #: Items under another id whose article (canonical link) is stored with
    #: other text: another feed's fuller version may match, or state more.
    copies: tuple[Copy, ...] = ()

    @property
    def unflagged_edits(self) -> tuple[Item, ...]:
        """The edited items that were not flagged."""
        return tuple(i for i in self.edited if i.id not in self.matched)


@dataclass(frozen=True, slots=True)
class Copy:
    """Another feed's entry for an article stored under ``stored_id``."""

    item: Item
    stored_id: str


@dataclass(frozen=True, slots=True)
class ItemEdit:
    """A stored item's new text at the source."""

    item: Item
    #: Keep the stored body: the entry is a teaser, and the body stored for it is
    #: its article's text (fetched once, when it was new), not the feed's.
    keep_body: bool = False
    #: Keep the stored content hash: the text is another feed's copy, and the
    #: hash stays that of the item's own entry, so that entry, unchanged, is
    #: not an edit at its next poll (which would write its shorter text back).
    keep_hash: bool = False
    #: Write it only if the item is not flagged (checked in the transaction): a
    #: copy's text stands for an article only while no text of it has matched.
    if_unflagged: bool = False


def apply_edits(s: Connection, edits: Sequence[ItemEdit]) -> None:
    """Write the source's new text of stored items, within the transaction ``s``.

    In the order of their ids: two instances writing the same items (one's edits,
    the other's copies of them) lock their rows in one order, and cannot deadlock.
    """
    if edits:
        s.execute(_EDIT_ITEM, [_edit_values(e) for e in sorted(edits, key=lambda e: e.item.id)])


def insert_new_items(s: Connection, upsert: Any, items: Sequence[Item], now: datetime) -> None:
    """``ItemStore.insert_items`` within the transaction ``s`` (``upsert``: the
    dialect's INSERT ... ON CONFLICT (id) DO NOTHING into items)."""
    if not items:
        return
    stored = _stored_urls(s, [i.url for i in items if i.url])
    rows = [item_values(i, now) for i in items if not (i.url and i.url in stored)]
    if rows:
        s.execute(upsert, rows)


def _copies(s: Connection, items: Sequence[Item]) -> tuple[Copy, ...]:
    """Of ``items`` (each with a link stored under another id), those whose stored
    article has other text than theirs."""
    stored: dict[str, tuple[str, str]] = {}
    for urls in _chunks(sorted({i.url for i in items if i.url})):
        for row in s.execute(_STORED_BY_URL.where(ITEMS.c.url.in_(urls))):
            stored.setdefault(row.url, (row.id, row.content_hash))
    return tuple(
        Copy(i, found[0]) for i in items
        if i.url and (found := stored.get(i.url)) is not None and found[1] != i.content_hash
    )  # fmt: skip


def _stored_urls(s: Connection, urls: Sequence[str]) -> set[str]:
    stored: set[str] = set()
    for chunk in _chunks(urls):
        stored.update(s.execute(select(ITEMS.c.url).where(ITEMS.c.url.in_(chunk))).scalars())
    return stored


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    """``values`` in look-ups of at most ``LOOKUP_CHUNK``: one parameter per value,
    and PostgreSQL takes at most 65,535 in a statement (a feed can list more)."""
    for start in range(0, len(values), LOOKUP_CHUNK):
        yield values[start : start + LOOKUP_CHUNK]


def item_values(item: Item, now: datetime) -> dict[str, object]:
    return {
        "id": item.id, "source_id": item.source_id, "outlet": item.outlet, "url": item.url,
        "title": item.title, "summary": item.summary, "body": item.body,
        "published": item.published, "seen_at": now, "content_hash": item.content_hash,
        "link": item.link,
    }  # fmt: skip


def _item(row: ItemRow) -> Item:
    return Item(
        row.id, row.source_id, row.outlet, row.url, row.title, row.summary, row.body,
        aware(row.published), row.content_hash, row.link,
    )  # fmt: skip


def _edit_values(edit: ItemEdit) -> dict[str, object]:
    item = edit.item
    return {
        "item_id": item.id, "new_title": item.title, "new_summary": item.summary,
        "new_body": None if edit.keep_body else item.body,
        "new_hash": None if edit.keep_hash else item.content_hash,
        "even_if_flagged": not edit.if_unflagged,
    }  # fmt: skip
