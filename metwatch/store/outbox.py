"""Subscribers, what they follow, and the outbox the deliverer drains."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from metwatch.models import (
    Delivery,
)
from metwatch.store.base import StoreBase
from metwatch.store.tables import (
    DeliveryRow,
    SubscriberRow,
    SubscriptionRow,
)


class OutboxStore(StoreBase):
    """Subscribers, their follows and their pending deliveries."""

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
