"""Drain the outbox: send or edit each pending delivery, and record the outcome.

The outbox row is the record: a delivery is marked sent (with Telegram's
message id) right after Telegram accepts it. A crash between the two can
repeat at most that one message; nothing is ever lost, because a row stays
pending until it is marked.

Per error: rate limit -> retry after the time Telegram asks; chat gone ->
subscriber deactivated; chat migrated -> follow the new id; message rejected
(our HTML bug) -> resend as plain text and log; Telegram down or timing out ->
retry with capped backoff. Chats are served concurrently, so one chat's wait
never blocks the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from bot.pause import ChatPaused
from bot.render import render_story
from metwatch.errors import (
    ChatMoved,
    DeliveryUnavailable,
    MessageGone,
    MessageRejected,
    RateLimited,
    RecipientGone,
)
from metwatch.models import Delivery
from metwatch.ports import Clock, Notifier
from metwatch.store import SqlStore

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 600.0


@dataclass
class DrainReport:
    sent: int = 0
    edited: int = 0
    retried: int = 0
    dropped: int = 0
    #: Of ``retried``: how many were Telegram 429s.
    rate_limited: int = 0


class Deliverer:
    def __init__(self, store: SqlStore, notifier: Notifier, *, clock: Clock) -> None:
        self.store = store
        self.notifier = notifier
        self.clock = clock
        # One drain at a time: two concurrent drains could send the same row twice.
        self._lock = asyncio.Lock()

    async def drain(self, batch: int = 500) -> DrainReport:
        """Deliver everything pending now; returns what happened."""
        report = DrainReport()
        async with self._lock:
            while True:
                pending = self.store.pending_deliveries(self.clock(), limit=batch)
                if not pending:
                    return report
                by_chat: dict[int, list[Delivery]] = defaultdict(list)
                for d in pending:
                    by_chat[d.chat_id].append(d)
                await asyncio.gather(*(self._chat(ds, report) for ds in by_chat.values()))
                if report.retried or report.dropped or len(pending) < batch:
                    return report

    async def _chat(self, deliveries: list[Delivery], report: DrainReport) -> None:
        for delivery in deliveries:
            if not await self._one(delivery, report):
                return  # this chat has to wait (or is gone): leave its other rows

    async def _one(self, d: Delivery, report: DrainReport) -> bool:
        story = self.store.story(d.story_id)
        text = render_story(story)
        try:
            message_id = await self._send_or_edit(d, text)
        except RateLimited as e:
            self._retry(d, str(e), e.retry_after)
            report.retried += 1
            if not isinstance(e, ChatPaused):
                report.rate_limited += 1
            return False
        except RecipientGone as e:
            log.warning("chat %s is gone, deactivating: %s", d.chat_id, e)
            self.store.unsubscribe(d.chat_id, reason=str(e))
            report.dropped += 1
            return False
        except ChatMoved as e:
            log.info("chat %s moved to %s", d.chat_id, e.new_chat_id)
            self.store.migrate_chat(d.chat_id, e.new_chat_id)
            report.retried += 1
            return False
        except DeliveryUnavailable as e:
            self._retry(d, str(e), min(2.0 ** (d.attempts + 1), MAX_RETRY_DELAY))
            report.retried += 1
            return False
        self.store.mark_sent(
            d.id, revision=story.revision, message_id=message_id, now=self.clock()
        )
        log.info(
            "delivered story=%s chat=%s message=%s", d.story_id, d.chat_id, message_id,
            extra={"event": "delivery", "story": d.story_id, "chat": d.chat_id},
        )  # fmt: skip
        if d.message_id is None:
            report.sent += 1
        else:
            report.edited += 1
        return True

    async def _send_or_edit(self, d: Delivery, text: str) -> int:
        try:
            if d.message_id is None:
                return await self.notifier.send(d.chat_id, text)
            try:
                await self.notifier.edit(d.chat_id, d.message_id, text)
            except MessageGone:
                return await self.notifier.send(d.chat_id, text, reply_to=d.message_id)
            return d.message_id
        except MessageRejected:
            # Our HTML was wrong; the subscriber still gets the news as plain text.
            log.exception("message for story %s rejected; sending plain text", d.story_id)
            return await self.notifier.send(d.chat_id, text, html=False)

    def _retry(self, d: Delivery, error: str, seconds: float) -> None:
        at = self.clock() + timedelta(seconds=seconds)
        self.store.mark_retry(d.id, error=error, retry_at=at)
        log.warning("delivery %s to chat %s postponed %.0f s: %s", d.id, d.chat_id, seconds, error)
