"""Pausing a chat: read "/pause 24h", and hold back a paused chat's messages.

``PauseGate`` wraps the notifier the deliverer uses. For a paused chat it sends
nothing and raises ``ChatPaused`` (a ``RateLimited``) with the time left, which
the deliverer already treats as "keep the delivery, try again then";
``/resume`` releases the held deliveries at once
(``metwatch.store.subscribers.resume``). Nothing is lost by a pause: what was
held arrives when it ends.

Does not store pauses itself (``metwatch.store.subscribers`` does) and does
not answer commands (``bot.handlers`` does).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from metwatch.errors import RateLimited
from metwatch.ports import Clock, Notifier
from metwatch.store import SqlStore
from metwatch.store.subscribers import PAUSED_ERROR, paused_until

_DURATION = re.compile(r"(\d{1,5})\s*([mhd])", re.IGNORECASE)
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
SHORTEST_PAUSE = timedelta(minutes=1)
LONGEST_PAUSE = timedelta(days=30)


class ChatPaused(RateLimited):
    """The chat is paused: retry after ``retry_after`` seconds (not a Telegram 429)."""


def parse_duration(text: str) -> timedelta | None:
    """``30m``, ``24h`` or ``2d`` as a timedelta; None when unreadable or out of range."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    duration = int(match[1]) * _UNITS[match[2].lower()]
    return duration if SHORTEST_PAUSE <= duration <= LONGEST_PAUSE else None


def describe_until(until: datetime) -> str:
    return f"{until:%d %b %Y %H:%M} UTC"


class PauseGate:
    """A ``Notifier`` that sends through ``inner`` unless the chat is paused."""

    def __init__(self, inner: Notifier, store: SqlStore, *, clock: Clock) -> None:
        self.inner = inner
        self.store = store
        self.clock = clock

    def _check(self, chat_id: int) -> None:
        now = self.clock()
        until = paused_until(self.store, chat_id, now)
        if until is not None:
            seconds = (until - now).total_seconds()
            raise ChatPaused(f"{PAUSED_ERROR} until {describe_until(until)}", seconds)

    async def send(
        self, chat_id: int, text: str, *, html: bool = True, reply_to: int | None = None
    ) -> int:
        self._check(chat_id)
        return await self.inner.send(chat_id, text, html=html, reply_to=reply_to)

    async def edit(self, chat_id: int, message_id: int, text: str) -> None:
        self._check(chat_id)
        await self.inner.edit(chat_id, message_id, text)
