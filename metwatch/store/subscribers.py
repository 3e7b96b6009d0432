"""Subscriber-side queries: follows, delivery preferences, chats, item search.

Plain functions over a ``SqlStore`` (so ``sql.py`` stays the outbox and pipeline's
store): follow and unfollow one target, list active chats, pause and resume a
chat, and search stored items by words. Results are frozen objects, never ORM
rows.

Delivery preferences (/pause, /quiet, /mode) are columns of ``subscribers``;
the deliverer asks ``bot.holds`` whether they hold a chat's messages and, if
so, marks its deliveries ``held`` until then (not a failed attempt). Changing a
preference releases what it held, so the new preference is applied at once.

Does not send anything and does not know about Telegram.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, update
from sqlalchemy.orm import Mapped
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from metwatch.models import ChatPrefs
from metwatch.store.sql import SqlStore, aware
from metwatch.store.tables import DeliveryRow, ItemRow, SubscriberRow, SubscriptionRow

#: ``last_error`` prefix of a delivery held back by its chat's preferences.
HELD = "held"
#: Longest search: more words only make the query slower, never better.
MAX_SEARCH_WORDS = 8
_LIKE_ESCAPE = "\\"


@dataclass(frozen=True, slots=True)
class FoundItem:
    """A stored item that matched a search."""

    item_id: str
    outlet: str
    title: str
    url: str | None
    published: datetime | None


# -- follows -----------------------------------------------------------------------------


def unfollow(store: SqlStore, chat_id: int, target: str) -> bool:
    """Stop following ``target`` (a topic or finding id); True if it was followed."""
    with store._session() as s:
        row = s.get(SubscriptionRow, (chat_id, target))
        if row is None:
            return False
        s.delete(row)
        return True


def active_chats(store: SqlStore) -> list[int]:
    """Every subscribed chat that has not stopped or removed the bot, in id order."""
    with store._session() as s:
        rows = s.exec(
            select(SubscriberRow.chat_id)
            .where(col(SubscriberRow.active))
            .order_by(col(SubscriberRow.chat_id))
        )
        return list(rows)


# -- delivery preferences: pause, quiet hours, digest -----------------------------------


def chat_prefs(store: SqlStore, chat_id: int) -> ChatPrefs:
    """The chat's delivery preferences (defaults for an unknown chat)."""
    with store._session() as s:
        row = s.get(SubscriberRow, chat_id)
        if row is None:
            return ChatPrefs()
        return ChatPrefs(
            aware(row.paused_until), row.quiet_start, row.quiet_end, row.mode,
            row.digest_hour, aware(row.last_digest_at),
        )  # fmt: skip


def _update(store: SqlStore, chat_id: int, **values: object) -> None:
    with store._session() as s:
        s.execute(
            update(SubscriberRow)
            .where(col(SubscriberRow.chat_id) == chat_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def pause(store: SqlStore, chat_id: int, until: datetime) -> None:
    """Send nothing to ``chat_id`` before ``until`` (timezone-aware)."""
    _update(store, chat_id, paused_until=until)


def paused_until(store: SqlStore, chat_id: int, now: datetime) -> datetime | None:
    """When the chat's pause ends, or None when it is not paused at ``now``."""
    until = chat_prefs(store, chat_id).paused_until
    return until if until is not None and until > now else None


def is_paused(store: SqlStore, chat_id: int, now: datetime) -> bool:
    return paused_until(store, chat_id, now) is not None


def set_quiet(store: SqlStore, chat_id: int, start: str | None, end: str | None) -> None:
    """Hold messages between local times ``start`` and ``end`` ("HH:MM"); None: no quiet."""
    _update(store, chat_id, quiet_start=start, quiet_end=end)
    release_held(store, chat_id)


def set_mode(store: SqlStore, chat_id: int, mode: str, digest_hour: int, now: datetime) -> None:
    """Instant messages, or one digest a day; the first digest comes at the next slot."""
    _update(store, chat_id, mode=mode, digest_hour=digest_hour, last_digest_at=now)
    release_held(store, chat_id)


def mark_digest_sent(store: SqlStore, chat_id: int, now: datetime) -> None:
    _update(store, chat_id, last_digest_at=now)


def resume(store: SqlStore, chat_id: int) -> None:
    """End the chat's pause and release the deliveries it held back."""
    _update(store, chat_id, paused_until=None)
    release_held(store, chat_id)


def hold(store: SqlStore, delivery_ids: Sequence[int], until: datetime, why: str) -> None:
    """Keep deliveries pending until ``until`` without counting a failed attempt."""
    with store._session() as s:
        s.execute(
            update(DeliveryRow)
            .where(col(DeliveryRow.id).in_(delivery_ids))
            .values(next_attempt_at=until, last_error=f"{HELD}: {why}")
            .execution_options(synchronize_session=False)
        )


def release_held(store: SqlStore, chat_id: int) -> None:
    """Deliveries held by the chat's preferences become due now (they are re-judged)."""
    with store._session() as s:
        s.execute(
            update(DeliveryRow)
            .where(
                col(DeliveryRow.chat_id) == chat_id,
                col(DeliveryRow.status) == "pending",
                col(DeliveryRow.last_error).startswith(HELD),
            )
            .values(next_attempt_at=None, last_error=None)
            .execution_options(synchronize_session=False)
        )


# -- search ------------------------------------------------------------------------------


def _contains(column: Mapped[str], word: str) -> ColumnElement[bool]:
    escaped = word.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape=_LIKE_ESCAPE)


def search_items(store: SqlStore, words: Sequence[str], limit: int = 10) -> list[FoundItem]:
    """Items whose title, summary or body contains every word (any case), newest first.

    Each word may appear in a different field. ``%`` and ``_`` are matched
    literally. Case folding is the database's: SQLite folds ASCII letters only.
    """
    wanted = [w for w in words if w][:MAX_SEARCH_WORDS]
    if not wanted:
        return []
    fields = (col(ItemRow.title), col(ItemRow.summary), col(ItemRow.body))
    conditions = [or_(*(_contains(f, w) for f in fields)) for w in wanted]
    newest = func.coalesce(col(ItemRow.published), col(ItemRow.seen_at))
    with store._session() as s:
        rows = s.exec(
            select(ItemRow)
            .where(*conditions)
            .order_by(newest.desc(), col(ItemRow.id))
            .limit(limit)
        ).all()
        return [
            FoundItem(r.id, r.outlet, r.title, r.link or r.url, aware(r.published)) for r in rows
        ]
