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
from metwatch.models import RawEntry


def parse_feed(content: bytes, url: str, content_type: str = "") -> list[RawEntry]:
    """Parse RSS/Atom ``content``.

    Raises:
        ParseError: the body is empty or is not a feed (e.g. an HTML page).
    """
    if not content.strip():
        raise ParseError("empty response: no feed in the body", url=url)
    headers = {"content-type": content_type} if content_type else {}
    parsed = feedparser.parse(content, response_headers=headers, sanitize_html=False)
    if not parsed.get("version") and not parsed.entries:
        raise ParseError(_not_a_feed(parsed, content_type), url=url)
    return [_entry(e) for e in parsed.entries]


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
