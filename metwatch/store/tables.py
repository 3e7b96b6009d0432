"""SQLModel tables. They never leave ``metwatch.store``: ``sql.py`` converts them
to the frozen objects of ``metwatch.models`` at the boundary.

Schema changes ship as Alembic migrations (``metwatch/store/migrations``);
``metwatch db upgrade`` and every start-up apply them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def _utc() -> Column[datetime]:
    return Column(DateTime(timezone=True))


class SourceRow(SQLModel, table=True):
    __tablename__ = "sources"

    id: str = Field(primary_key=True, max_length=60)
    name: str
    kind: str = "feed"
    url: str
    interval: int = 900
    enabled: bool = True
    etag: str | None = None
    last_modified: str | None = None
    next_poll_at: datetime | None = Field(default=None, sa_column=_utc())
    last_polled_at: datetime | None = Field(default=None, sa_column=_utc())
    last_success_at: datetime | None = Field(default=None, sa_column=_utc())
    last_error: str | None = None
    error_count: int = 0
    failing: bool = False
    items_seen: int = 0
    #: Where the source has moved permanently (301/308): polled instead of ``url``.
    moved_to: str | None = None
    #: The last poll that found every entry new (entries it had): older items may
    #: have left the feed unseen since the poll before.
    gap_at: datetime | None = Field(default=None, sa_column=_utc())
    gap_entries: int | None = None
    #: Seconds between that poll and the good poll before it.
    gap_after: int | None = None
    #: When admins were last told of a gap of this source (at most daily).
    gap_alerted_at: datetime | None = Field(default=None, sa_column=_utc())
    #: A page source's CSS selector for article links, as the rules file gives it.
    link_selector: str | None = None
    #: The feed's own refresh hint (``<ttl>``, ``sy:updatePeriod``; seconds) in its
    #: last full body: a 304 brings no body, and the feed's wish still stands.
    refresh_hint: int | None = None
    #: Not to be polled before this: the site's Retry-After at the last failed poll
    #: (a new address on the same site keeps it).
    held_until: datetime | None = Field(default=None, sa_column=_utc())


class ItemRow(SQLModel, table=True):
    __tablename__ = "items"

    id: str = Field(primary_key=True, max_length=32)
    source_id: str = Field(index=True)
    outlet: str
    url: str | None = Field(default=None, index=True)
    title: str
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    published: datetime | None = Field(default=None, sa_column=_utc())
    seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    content_hash: str
    #: bot.fingerprints.Fingerprint as JSON, for clustering later coverage against it.
    fingerprint: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: The link as published, tracking parameters removed: what subscribers are shown
    #: (``url``, the canonical link, identifies the article). None: show ``url``.
    link: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class MatchRow(SQLModel, table=True):
    __tablename__ = "matches"
    __table_args__ = (UniqueConstraint("item_id", "finding_id"),)

    id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(foreign_key="items.id", index=True)
    finding_id: str = Field(index=True)
    topic_id: str
    title: str
    topic_only: bool = False
    score: float
    #: Evidence as JSON: [{"sentence", "start", "end"}, ...].
    evidence: str = Field(sa_column=Column(Text, nullable=False))


class StoryRow(SQLModel, table=True):
    __tablename__ = "stories"

    id: int | None = Field(default=None, primary_key=True)
    headline: str
    first_seen: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revision: int = 1
    #: The extractive summary as a JSON list of sentences.
    summary: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class StoryItemRow(SQLModel, table=True):
    __tablename__ = "story_items"

    story_id: int = Field(foreign_key="stories.id", primary_key=True)
    item_id: str = Field(foreign_key="items.id", primary_key=True)
    position: int = 0
    #: The item this one is a syndicated copy of (same text on another site).
    copy_of: str | None = None


class SubscriberRow(SQLModel, table=True):
    __tablename__ = "subscribers"

    chat_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    chat_type: str = "private"
    title: str | None = None
    active: bool = True
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    deactivated_reason: str | None = None
    #: /pause: nothing is sent before this time.
    paused_until: datetime | None = Field(default=None, sa_column=_utc())
    #: /quiet: local "HH:MM" times between which messages are held.
    quiet_start: str | None = None
    quiet_end: str | None = None
    #: /mode: "instant", or "digest" (one message a day at ``digest_hour`` local time).
    mode: str = "instant"
    digest_hour: int = 8
    last_digest_at: datetime | None = Field(default=None, sa_column=_utc())


class SubscriptionRow(SQLModel, table=True):
    __tablename__ = "subscriptions"

    chat_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    #: A topic id or a finding id from the rules file.
    target: str = Field(primary_key=True)


class DeliveryRow(SQLModel, table=True):
    """The outbox: one row per (chat, story); a chat can never get a story twice."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("chat_id", "story_id"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    story_id: int = Field(foreign_key="stories.id", index=True)
    #: Story revision this chat has been shown (0: nothing sent yet).
    sent_revision: int = 0
    #: Story revision owed; pending while sent_revision < wanted_revision.
    wanted_revision: int = 1
    message_id: int | None = None
    status: str = Field(default="pending", index=True)
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = Field(default=None, sa_column=_utc())
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=_utc())


class CounterRow(SQLModel, table=True):
    """Counters raised in the same transaction as what they count."""

    __tablename__ = "counters"

    name: str = Field(primary_key=True)
    #: "stories": raised by every write to the stories (clustering checks it).
    value: int = Field(sa_column=Column(BigInteger, nullable=False))


class MetaRow(SQLModel, table=True):
    """Small key/value facts about this database (e.g. the last rules version)."""

    __tablename__ = "meta"

    key: str = Field(primary_key=True)
    value: str
