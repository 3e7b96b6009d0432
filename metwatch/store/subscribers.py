"""Subscriber-side queries the bot's commands need: follows, pauses, chats, item search.

Plain functions over a ``SqlStore`` (so ``sql.py`` stays the outbox and pipeline's
store): follow and unfollow one target, list active chats, pause and resume a
chat, and search stored items by words. Results are frozen objects, never ORM
rows.

Pauses live in the ``meta`` table under ``paused_until:<chat id>`` (an ISO
timestamp; empty means not paused). A ``paused_until`` column on ``subscribers``
would be the better home, because the outbox query could then skip paused chats
itself; until it exists, ``bot.pause.PauseGate`` holds a paused chat's
deliveries until the pause ends, marked with ``PAUSED_ERROR`` so that
``resume`` can release them at once.

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

from metwatch.store.sql import SqlStore, aware
from metwatch.store.tables import DeliveryRow, ItemRow, MetaRow, SubscriberRow, SubscriptionRow

#: ``last_error`` of a delivery held back because its chat is paused.
PAUSED_ERROR = "chat paused"
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


# -- pauses ------------------------------------------------------------------------------


def _pause_key(chat_id: int) -> str:
    return f"paused_until:{chat_id}"


def pause(store: SqlStore, chat_id: int, until: datetime) -> None:
    """Send nothing to ``chat_id`` before ``until`` (timezone-aware)."""
    store.set_meta(_pause_key(chat_id), until.isoformat())


def paused_until(store: SqlStore, chat_id: int, now: datetime) -> datetime | None:
    """When the chat's pause ends, or None when it is not paused at ``now``."""
    value = store.get_meta(_pause_key(chat_id))
    if not value:
        return None
    until = datetime.fromisoformat(value)
    return until if until > now else None


def is_paused(store: SqlStore, chat_id: int, now: datetime) -> bool:
    return paused_until(store, chat_id, now) is not None


def resume(store: SqlStore, chat_id: int) -> None:
    """End the chat's pause and release the deliveries it held back (one transaction)."""
    with store._session() as s:
        row = s.get(MetaRow, _pause_key(chat_id))
        if row is not None:
            row.value = ""
        s.execute(
            update(DeliveryRow)
            .where(
                col(DeliveryRow.chat_id) == chat_id,
                col(DeliveryRow.status) == "pending",
                col(DeliveryRow.last_error).startswith(PAUSED_ERROR),
            )
            .values(next_attempt_at=None, last_error=None, attempts=0)
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
        return [FoundItem(r.id, r.outlet, r.title, r.url, aware(r.published)) for r in rows]
