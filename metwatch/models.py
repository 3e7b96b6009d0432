"""Plain data objects passed between the pipeline stages.

fetch -> parse -> normalise -> classify -> cluster -> deliver. Each object is
named for where it comes from and where it goes. They are frozen and hold no
database session: the store converts its tables to these at its boundary.
This module imports nothing from the project and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A source as declared in the watch rules file."""

    #: Stable key, unique within the rules file (e.g. ``hmicfrs-news``).
    id: str
    #: Human name shown to subscribers and admins (the outlet).
    name: str
    #: What kind of watcher reads it: ``feed``, ``search``, ``page`` or ``sitemap``.
    kind: str
    #: The URL fetched (for ``search``, already built from the query).
    url: str
    #: Polling interval in seconds.
    interval: int
    #: For ``page`` sources: CSS selector picking article links on the listing page.
    link_selector: str | None = None


@dataclass(frozen=True, slots=True)
class SourceState:
    """Poll state of one source, from the store, used to build the next request."""

    id: str
    #: The address polled: where the source has moved permanently, else the rules file's.
    url: str
    etag: str | None
    last_modified: str | None
    error_count: int
    #: The last good poll at the source's current address, kind and selector.
    last_success_at: datetime | None = None
    #: When the schedule wanted this poll (``make_all_due`` makes it "now").
    due_at: datetime | None = None
    #: The feed's own refresh hint in its last full body (seconds), for a 304.
    refresh_hint: float | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What the fetcher got for one source URL."""

    url: str
    #: Final URL after redirects.
    final_url: str
    status: int
    #: Body bytes; empty for 304 Not Modified.
    content: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    #: Seconds the server asked us to wait before the next request (Cache-Control,
    #: Expires or Retry-After), if it said anything.
    wait_hint: float | None = None
    #: Where ``url`` has moved: the last address reached by permanent redirects
    #: (301, 308) only, None when the first redirect was temporary or there was none.
    moved_to: str | None = None
    #: Where a redirect points (absolute), when redirects were not followed.
    location: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One entry as the parser read it, before normalisation."""

    guid: str | None
    link: str | None
    title: str
    summary: str
    #: Full content when the feed carries it (``content:encoded``, Atom content).
    content: str
    published: datetime | None
    author: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What the parser read from one feed body."""

    entries: tuple[RawEntry, ...]
    #: How often the feed says it changes (RSS ttl, sy:updatePeriod), in seconds.
    refresh_hint: float | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """A normalised news item: plain text, canonical link, stable identity."""

    #: Stable identity (hex digest); the same article polled twice has the same id.
    id: str
    source_id: str
    #: Outlet name shown to subscribers.
    outlet: str
    url: str | None
    title: str
    summary: str
    body: str
    published: datetime | None
    #: Digest of title+text, used to spot edits of an existing item.
    content_hash: str
    #: The link as published, tracking parameters and fragment removed: what
    #: subscribers are shown (``url`` is rewritten to identify the article).
    link: str | None = None

    @property
    def shown_link(self) -> str | None:
        return self.link or self.url

    @property
    def text(self) -> str:
        """The text classifiers read: title, summary and body, one per paragraph."""
        return assemble_text(self.title, self.summary, self.body)


def assemble_text(title: str, summary: str, body: str) -> str:
    """Join the fields the way classifiers see them (field offsets depend on this)."""
    parts = [title]
    if summary and summary not in body:
        parts.append(summary)
    if body:
        parts.append(body)
    return "\n\n".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class Evidence:
    """The sentence that proves a match, with character offsets into ``Item.text``."""

    sentence: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Match:
    """An item matched a tracked finding (or only its topic)."""

    #: Finding id, or the topic id for topic-only matches.
    finding_id: str
    topic_id: str
    title: str
    score: float
    evidence: tuple[Evidence, ...]
    #: True when this is a topic-level match with no specific finding.
    topic_only: bool = False


@dataclass(frozen=True, slots=True)
class Classified:
    """An item with all its matches: the unit that enters clustering."""

    item: Item
    matches: tuple[Match, ...]

    @property
    def flagged(self) -> bool:
        return bool(self.matches)


@dataclass(frozen=True, slots=True)
class StoryLink:
    """One outlet's coverage within a story."""

    item_id: str
    outlet: str
    title: str
    url: str | None
    published: datetime | None
    #: Item id this entry is a syndicated copy of, if it is one.
    copy_of: str | None = None


@dataclass(frozen=True, slots=True)
class StoryMember:
    """What clustering needs to know about one item already in a story."""

    item_id: str
    #: Stored fingerprint (JSON), or None when it must be recomputed from ``text``.
    fingerprint: str | None
    text: str
    finding_ids: frozenset[str]
    topic_ids: frozenset[str]
    published: datetime


@dataclass(frozen=True, slots=True)
class StoryCoverage:
    """A recent story with its members: a clustering candidate, from the store."""

    story_id: int
    first_seen: datetime
    members: tuple[StoryMember, ...]
    #: Goes up by one with each member; tells a cached copy it is stale.
    revision: int = 1


@dataclass(frozen=True, slots=True)
class Story:
    """Coverage of one event across outlets: what a subscriber receives."""

    id: int
    headline: str
    summary: tuple[str, ...]
    links: tuple[StoryLink, ...]
    #: Matches keyed by finding id, first evidence wins.
    matches: tuple[Match, ...]
    first_seen: datetime
    #: Increases every time coverage or findings are added; deliveries track it.
    revision: int = 1

    @property
    def finding_ids(self) -> frozenset[str]:
        return frozenset(m.finding_id for m in self.matches)

    @property
    def topic_ids(self) -> frozenset[str]:
        return frozenset(m.topic_id for m in self.matches)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One pending message from the outbox: a story revision owed to one chat."""

    id: int
    chat_id: int
    story_id: int
    #: Story revision this delivery must bring the chat up to.
    revision: int
    #: Telegram message already sent for this story (edits go there), if any.
    message_id: int | None
    attempts: int


@dataclass(frozen=True, slots=True)
class ChatPrefs:
    """How and when one chat wants its messages (/pause, /quiet, /mode)."""

    paused_until: datetime | None = None
    #: Local "HH:MM" bounds of the quiet hours, or None.
    quiet_start: str | None = None
    quiet_end: str | None = None
    #: "instant" or "digest".
    mode: str = "instant"
    #: Local hour of the daily digest.
    digest_hour: int = 8
    last_digest_at: datetime | None = None


#: How long health reports show a source's last gap (a poll that found every entry new).
GAP_SHOWN = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """What ``metwatch sources`` and the admin ``/status`` show for one source."""

    id: str
    name: str
    url: str
    last_success: datetime | None
    last_error: str | None
    error_count: int
    next_poll: datetime | None
    items_seen: int
    failing: bool
    #: Where the source has moved permanently (polled instead of ``url``).
    moved_to: str | None = None
    #: The last poll that found every entry new, and how many entries it had.
    gap_at: datetime | None = None
    gap_entries: int | None = None
    #: How long after the poll before (seconds).
    gap_after: int | None = None

    def recent_gap(self, now: datetime) -> bool:
        """Whether a poll found every entry new within ``GAP_SHOWN`` of ``now``."""
        return self.gap_at is not None and now - self.gap_at < GAP_SHOWN

    @property
    def state(self) -> str:
        """FAILING past the failure threshold, retrying after an error, else ok."""
        return "FAILING" if self.failing else ("retrying" if self.error_count else "ok")


@dataclass(frozen=True, slots=True)
class NewItem:
    """A new item as a poll reports it: enough to count and name it, not its text.

    A tick over a thousand new sources returns every poll's outcome at once; with
    full items that held 50,000 article texts in memory until the tick ended.
    """

    id: str
    title: str
    url: str | None


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What polling one source produced (the success value of a poll)."""

    source_id: str
    fetched: bool
    new_items: tuple[NewItem, ...] = ()
    flagged: tuple[Classified, ...] = ()
    notes: tuple[str, ...] = field(default=())
