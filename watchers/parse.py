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

import feedparser

from metwatch.errors import ParseError
from metwatch.models import ParsedFeed, RawEntry

_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400, "monthly": 30 * 86400,
            "yearly": 365 * 86400}  # fmt: skip


def parse_feed(content: bytes, url: str, content_type: str = "") -> ParsedFeed:
    """Parse RSS/Atom ``content``; the feed's own refresh hint comes along.

    Raises:
        ParseError: the body is empty or is not a feed (e.g. an HTML page).
    """
    if not content.strip():
        raise ParseError("empty response: no feed in the body", url=url)
    headers = {"content-type": content_type} if content_type else {}
    parsed = feedparser.parse(content, response_headers=headers, sanitize_html=False)
    if not parsed.get("version") and not parsed.entries:
        raise ParseError(_not_a_feed(parsed, content_type), url=url)
    entries = tuple(_entry(e) for e in parsed.entries)
    return ParsedFeed(entries, _refresh_hint(parsed.feed))


def _refresh_hint(feed: Any) -> float | None:
    """RSS <ttl> (minutes) or sy:updatePeriod / sy:updateFrequency, in seconds."""
    hints = []
    ttl = str(feed.get("ttl", "")).strip()
    if ttl.isdigit():
        hints.append(int(ttl) * 60.0)
    period = _PERIODS.get(str(feed.get("sy_updateperiod", "")).strip().lower())
    if period:
        frequency = str(feed.get("sy_updatefrequency", "1")).strip()
        hints.append(period / max(int(frequency) if frequency.isdigit() else 1, 1))
    return max(hints) if hints else None


def _not_a_feed(parsed: Any, content_type: str) -> str:
    kind = content_type.split(";")[0].strip() or "an unknown content type"
    if "html" in kind:
        return f"not a feed: got {kind}"
    if parsed.get("bozo"):
        reason = str(parsed.get("bozo_exception") or "malformed XML")
        return f"not a feed: {reason}"
    return f"not a feed: got {kind}"


def _entry(entry: Any) -> RawEntry:
    content = ""
    if entry.get("content"):
        content = max((c.get("value", "") for c in entry.content), key=len)
    return RawEntry(
        guid=entry.get("id") or None,
        link=entry.get("link") or None,
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
