"""Feed bytes -> RawEntry list, with feedparser. Pure (no network).

Malformed XML is read as far as feedparser can (its "bozo" mode) rather than
dropped; a body that yields no feed at all (an HTML page, an empty body)
raises ``ParseError`` with a sentence that says what was received.
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from metwatch.errors import ParseError
from metwatch.models import ParsedFeed, RawEntry

_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400, "monthly": 30 * 86400,
            "yearly": 365 * 86400}  # fmt: skip
_MAX_DIGITS = 9


def parse_feed(content: bytes, url: str, content_type: str = "") -> ParsedFeed:
    """Parse RSS/Atom ``content``; the feed's own refresh hint comes along.

    Raises:
        ParseError: the body is empty or is not a feed (e.g. an HTML page).
    """
    if not content.strip():
        raise ParseError("empty response: no feed in the body", url=url)
    headers = {"content-type": content_type} if content_type else {}
    # resolve_relative_uris=False: feedparser then stops rewriting the HTML of titles,
    # summaries and content (absolute hrefs, re-serialised tags), about a fifth of its
    # time on a 50 KB news feed. metwatch keeps only the plain text of that HTML, and
    # entry links and ids are still resolved against xml:base (a separate step).
    parsed = feedparser.parse(
        content, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )
    if not parsed.get("version") and not parsed.entries:
        reason = _not_a_feed(parsed, content_type)
        # A page given instead of its feed (a common first try): say which feed it
        # names. Imported here: the HTML stack costs a worker process 2.6 MB of
        # memory, for a failure path.
        from watchers.discover import discovery_hint

        if hint := discovery_hint(content, url, content_type):
            reason = f"{reason}; {hint}"
        raise ParseError(reason, url=url)
    entries = tuple(_entry(e, url) for e in parsed.entries)
    return ParsedFeed(entries, _refresh_hint(parsed.feed))


def _refresh_hint(feed: Any) -> float | None:
    # str(): feedparser stores an element that has attributes as a dict of them.
    return refresh_hint(
        str(feed.get("ttl", "")),
        str(feed.get("sy_updateperiod", "")),
        str(feed.get("sy_updatefrequency", "")),
    )


def refresh_hint(ttl: str, period: str, frequency: str) -> float | None:
    """Seconds between updates a feed asks for, from the text of its RSS <ttl>
    (minutes) and sy:updatePeriod / sy:updateFrequency ("" where absent): the
    longer of the two, or None when it gives neither.

    Shared by both parsers, so the fast path cannot drift from feedparser's.
    """
    hints: list[float] = []
    minutes = _count(ttl)
    if minutes is not None:
        hints.append(minutes * 60.0)
    period_seconds = _PERIODS.get(period.strip().lower())
    if period_seconds:
        # Updates per period; absent, unreadable or 0 (an infinite rate) count as
        # the module's default of 1.
        hints.append(period_seconds / (_count(frequency) or 1))
    return max(hints) if hints else None


def _count(text: str) -> int | None:
    """A whole number of at most 9 digits, else None.

    isdecimal, not isdigit: int() rejects digits such as "²". Longer numbers are
    not real intervals (10**9 minutes is some 1,900 years), and int() / float()
    raise on very long ones, which would fail the whole poll.
    """
    text = text.strip()
    if not text.isdecimal() or len(text) > _MAX_DIGITS:
        return None
    return int(text)


def _not_a_feed(parsed: Any, content_type: str) -> str:
    kind = content_type.split(";")[0].strip() or "an unknown content type"
    if "html" in kind:
        return f"not a feed: got {kind}"
    if parsed.get("bozo"):
        reason = str(parsed.get("bozo_exception") or "malformed XML")
        return f"not a feed: {reason}"
    return f"not a feed: got {kind}"


def absolute_link(link: str | None, base: str) -> str | None:
    """``link`` made absolute against the feed's URL (after redirects), so a link
    like "/news/a.html" reaches subscribers as one that works.

    Only links without a scheme are joined: feedparser has already resolved
    xml:base, and joining every link (feedparser's content-location) costs a
    third of its parse time.
    """
    if not link:
        return None
    try:
        return link if urlsplit(link).scheme else urljoin(base, link)
    except ValueError:  # "http://[broken": no link, but the entry is kept
        return None


def _entry(entry: Any, url: str) -> RawEntry:
    content = ""
    if entry.get("content"):
        content = max((c.get("value", "") for c in entry.content), key=len)
    return RawEntry(
        guid=entry.get("id") or None,
        link=absolute_link(entry.get("link"), url),
        title=entry.get("title", "") or "",
        summary=entry.get("summary", "") or "",
        content=content,
        published=_date(entry.get("published_parsed") or entry.get("updated_parsed")),
        author=entry.get("author") or None,
    )


def _date(value: time.struct_time | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None
