"""Drain the outbox: send or edit each pending delivery, and record the outcome.

The outbox row is the record: a delivery is marked sent (with Telegram's
message id) right after Telegram accepts it. A crash between the two can
repeat at most that one message; nothing is ever lost, because a row stays
pending until it is marked.

Per chat, first the chat's own preferences (``bot.holds``): a paused chat, a
chat in its quiet hours or a digest chat between digests has its deliveries
held until then. A digest chat gets all its pending stories in one message.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.holds import hold_until
from bot.render import render_digest, render_story
from metwatch.errors import (
    ChatMoved,
    DeliveryUnavailable,
    MessageGone,
    MessageRejected,
    RateLimited,
    RecipientGone,
)
from metwatch.models import Delivery, Story
from metwatch.ports import Clock, Notifier
from metwatch.store import SqlStore
from metwatch.store.subscribers import chat_prefs, hold, mark_digest_sent

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 600.0
DIGEST_RETRY = 60.0
SENDS_IN_FLIGHT = 30
UTC_ZONE = ZoneInfo("UTC")


@dataclass
class DrainReport:
    sent: int = 0
    edited: int = 0
    retried: int = 0
    dropped: int = 0
    #: Of ``retried``: how many were Telegram 429s.
    rate_limited: int = 0
    #: Deliveries held back by their chat's pause, quiet hours or digest mode.
    held: int = 0


class Deliverer:
    def __init__(
        self, store: SqlStore, notifier: Notifier, *, clock: Clock, tz: ZoneInfo = UTC_ZONE
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.tz = tz
        # One drain at a time: two concurrent drains could send the same row twice.
        self._lock = asyncio.Lock()
        self._stopping = False
        # Sends handed to Telegram's rate limiter at once: about a second's worth
        # at 30/s, so a stop finds few under way and 10,000 chats are not queued.
        self._sending = asyncio.Semaphore(SENDS_IN_FLIGHT)

    async def stop(self, grace: float) -> None:
        """Take no new sends, and wait (at most ``grace`` s) for those under way.

        A send Telegram has accepted is then marked before the process exits, so
        a shutdown repeats nothing; what is not sent stays pending for next time.
        """
        self._stopping = True
        try:
            async with asyncio.timeout(grace), self._lock:
                pass
        except TimeoutError:
            log.warning("shutting down with a drain still running after %.0f s", grace)

    async def drain(self, batch: int = 500) -> DrainReport:
        """Deliver everything pending now; returns what happened."""
        report = DrainReport()
        async with self._lock:
            while True:
                pending = self.store.pending_deliveries(self.clock(), limit=batch)
                if not pending or self._stopping:
                    return report
                by_chat: dict[int, list[Delivery]] = defaultdict(list)
                for d in pending:
                    by_chat[d.chat_id].append(d)
                await asyncio.gather(*(self._chat(ds, report) for ds in by_chat.values()))
                if report.retried or report.dropped or report.held or len(pending) < batch:
                    return report

    async def _chat(self, deliveries: list[Delivery], report: DrainReport) -> None:
        chat_id = deliveries[0].chat_id
        prefs = chat_prefs(self.store, chat_id)
        held = hold_until(prefs, self.clock(), self.tz)
        if held is not None:
            until, why = held
            hold(self.store, [d.id for d in deliveries], until, why)
            report.held += len(deliveries)
            return
        if prefs.mode == "digest":
            await self._digest(chat_id, deliveries, report)
            return
        for delivery in deliveries:
            async with self._sending:
                if self._stopping or not await self._one(delivery, report):
                    return  # stopping, or this chat has to wait (or is gone): leave the rest

    async def _one(self, d: Delivery, report: DrainReport) -> bool:
        story = self.store.story(d.story_id)
        text = render_story(story)
        message_id = await self._attempt(d, report, lambda: self._send_or_edit(d, text))
        if message_id is None:
            return False
        self._mark(d, story, message_id)
        if d.message_id is None:
            report.sent += 1
        else:
            report.edited += 1
        return True

    async def _digest(self, chat_id: int, deliveries: list[Delivery], report: DrainReport) -> None:
        """One message with every pending story, grouped by finding."""
        stories = [self.store.story(d.story_id) for d in deliveries]
        text = render_digest(stories, self.tz)
        message_id = await self._attempt(
            deliveries[0], report, lambda: self._send_plain_fallback(chat_id, text)
        )
        if message_id is None:
            # Keep the digest whole: the rest wait with the first one's retry.
            retry_at = self.clock() + timedelta(seconds=DIGEST_RETRY)
            hold(self.store, [d.id for d in deliveries[1:]], retry_at, "digest retry")
            return
        for d, story in zip(deliveries, stories, strict=True):
            self._mark(d, story, message_id)
        mark_digest_sent(self.store, chat_id, self.clock())
        report.sent += 1

    async def _attempt(
        self, d: Delivery, report: DrainReport, send: Callable[[], Awaitable[int]]
    ) -> int | None:
        """Run ``send``; on a delivery error, record what it means and return None."""
        try:
            return await send()
        except RateLimited as e:
            self._retry(d, str(e), e.retry_after)
            report.retried += 1
            report.rate_limited += 1
        except RecipientGone as e:
            log.warning("chat %s is gone, deactivating: %s", d.chat_id, e)
            self.store.unsubscribe(d.chat_id, reason=str(e))
            report.dropped += 1
        except ChatMoved as e:
            log.info("chat %s moved to %s", d.chat_id, e.new_chat_id)
            self.store.migrate_chat(d.chat_id, e.new_chat_id)
            report.retried += 1
        except DeliveryUnavailable as e:
            self._retry(d, str(e), min(2.0 ** (d.attempts + 1), MAX_RETRY_DELAY))
            report.retried += 1
        return None

    def _mark(self, d: Delivery, story: Story, message_id: int) -> None:
        self.store.mark_sent(
            d.id, revision=story.revision, message_id=message_id, now=self.clock()
        )
        log.info(
            "delivered story=%s chat=%s message=%s", d.story_id, d.chat_id, message_id,
            extra={"event": "delivery", "story": d.story_id, "chat": d.chat_id},
        )  # fmt: skip

    async def _send_or_edit(self, d: Delivery, text: str) -> int:
        if d.message_id is None:
            return await self._send_plain_fallback(d.chat_id, text)
        try:
            await self.notifier.edit(d.chat_id, d.message_id, text)
        except MessageGone:
            return await self.notifier.send(d.chat_id, text, reply_to=d.message_id)
        except MessageRejected:
            log.exception("edit for chat %s rejected; sending plain text", d.chat_id)
            return await self.notifier.send(d.chat_id, text, html=False, reply_to=d.message_id)
        return d.message_id

    async def _send_plain_fallback(self, chat_id: int, text: str) -> int:
        try:
            return await self.notifier.send(chat_id, text)
        except MessageRejected:
            # Our HTML was wrong; the subscriber still gets the news as plain text.
            log.exception("message for chat %s rejected; sending plain text", chat_id)
            return await self.notifier.send(chat_id, text, html=False)

    def _retry(self, d: Delivery, error: str, seconds: float) -> None:
        at = self.clock() + timedelta(seconds=seconds)
        self.store.mark_retry(d.id, error=error, retry_at=at)
        log.warning("delivery %s to chat %s postponed %.0f s: %s", d.id, d.chat_id, seconds, error)
