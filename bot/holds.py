"""When a chat's own preferences hold its messages back. Pure: the caller passes now.

* /pause: nothing before ``paused_until``;
* /quiet 22:00-07:00: nothing during the local quiet hours (they may span
  midnight); what arrives meanwhile is sent when they end;
* /mode digest: nothing between digests; a digest is due once the latest daily
  slot (``digest_hour`` local time) has passed since the last one was sent.

A held delivery stays in the outbox (held, not dropped) and is sent when the
hold ends. Does not touch the database or Telegram.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from metwatch.models import ChatPrefs

_DURATION = re.compile(r"(\d{1,5})\s*([mhd])", re.IGNORECASE)
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
_CLOCK = re.compile(r"([01]?\d|2[0-3])[:.h]?([0-5]\d)?")
SHORTEST_PAUSE = timedelta(minutes=1)
LONGEST_PAUSE = timedelta(days=30)


def parse_duration(text: str) -> timedelta | None:
    """``30m``, ``24h`` or ``2d`` as a timedelta; None when unreadable or out of range."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    duration = int(match[1]) * _UNITS[match[2].lower()]
    return duration if SHORTEST_PAUSE <= duration <= LONGEST_PAUSE else None


def parse_clock(text: str) -> str | None:
    """``22:00``, ``7``, ``0730`` -> "HH:MM"; None when not a time of day."""
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        return None
    return f"{int(match[1]):02d}:{int(match[2] or 0):02d}"


def parse_quiet(text: str) -> tuple[str, str] | None:
    """``22:00-07:00`` -> ("22:00", "07:00"); None when unreadable or empty."""
    start, sep, end = text.replace("–", "-").partition("-")
    if not sep:
        return None
    bounds = parse_clock(start), parse_clock(end)
    if bounds[0] is None or bounds[1] is None or bounds[0] == bounds[1]:
        return None
    return bounds[0], bounds[1]


def _at(day: datetime, hhmm: str, tz: ZoneInfo) -> datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day.date(), time(hour, minute), tzinfo=tz)


def quiet_ends(prefs: ChatPrefs, now: datetime, tz: ZoneInfo) -> datetime | None:
    """End of the quiet hours ``now`` falls in, or None outside them."""
    if prefs.quiet_start is None or prefs.quiet_end is None:
        return None
    local = now.astimezone(tz)
    for day in (local - timedelta(days=1), local):
        start = _at(day, prefs.quiet_start, tz)
        end = _at(day, prefs.quiet_end, tz)
        if end <= start:  # spans midnight
            end += timedelta(days=1)
        if start <= local < end:
            return end
    return None


def last_digest_slot(hour: int, now: datetime, tz: ZoneInfo) -> datetime:
    local = now.astimezone(tz)
    slot = datetime.combine(local.date(), time(hour), tzinfo=tz)
    return slot if slot <= local else slot - timedelta(days=1)


def hold_until(prefs: ChatPrefs, now: datetime, tz: ZoneInfo) -> tuple[datetime, str] | None:
    """Until when (and why) the chat's messages are held at ``now``; None: send now."""
    holds: list[tuple[datetime, str]] = []
    if prefs.paused_until is not None and prefs.paused_until > now:
        holds.append((prefs.paused_until, "paused"))
    if (end := quiet_ends(prefs, now, tz)) is not None:
        holds.append((end, "quiet hours"))
    if prefs.mode == "digest":
        slot = last_digest_slot(prefs.digest_hour, now, tz)
        if prefs.last_digest_at is not None and prefs.last_digest_at >= slot:
            holds.append((slot + timedelta(days=1), "digest"))
    return max(holds) if holds else None


def describe_until(until: datetime, tz: ZoneInfo) -> str:
    return f"{until.astimezone(tz):%d %b %Y %H:%M} ({tz.key})"
