"""Gaps: a poll that finds every entry new may have missed what left the feed.

A feed shows its newest entries only; what scrolled off between two polls cannot
be fetched afterwards. When every entry of a poll is new to a source that had
items before, some may have been missed. Why decides what to tell the admins:

* ``interval``: the poll before was on schedule, at the source's own interval:
  the source publishes faster than it is polled; a shorter interval helps;
* ``site``: on schedule, but the site's hint (Cache-Control, Expires, ttl) made
  metwatch wait longer than the interval; a shorter interval would not help;
* ``unpolled``: the poll before was long ago (the source was failing, or
  metwatch was not running): the gap is recorded and shown, but there is
  nothing to change, and the admins heard of the failures already.

Not a gap: fewer than ``MIN_GAP_ENTRIES`` entries (a feed that small turns over
with every item), a source's first poll, or the first poll after its address,
kind or link selector changed (the store forgets its last success then).

Pure: the caller passes the clock and what the store knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from metwatch.durations import duration
from watchers.schedule import longest_wait

MIN_GAP_ENTRIES = 3
#: How late a poll may come, beyond the longest wait its schedule allows, and still
#: count as on schedule: ticks, a full worker pool and a busy site delay polls.
LATE = 0.5
LATE_MIN = timedelta(minutes=2)

Cause = Literal["interval", "site", "unpolled"]


@dataclass(frozen=True, slots=True)
class Gap:
    """A poll found all ``entries`` new, ``after`` the source's previous good poll."""

    entries: int
    after: timedelta
    cause: Cause
    #: The longest the schedule waited between polls (seconds).
    spacing: float


def find_gap(
    entries: int, new: int, *, had_items: bool, previous_success: datetime | None,
    failed_since: bool, now: datetime, interval: int, wait_hint: float | None,
) -> Gap | None:  # fmt: skip
    """The gap a poll shows, if any.

    ``entries``: distinct entries in the body; ``new``: how many were new;
    ``had_items``: the source stored items before; ``previous_success``: its last
    good poll at its current address (None: never); ``failed_since``: polls
    failed after it; ``wait_hint``: the site's longest hint now (seconds).
    """
    if entries < MIN_GAP_ENTRIES or new < entries or not had_items or previous_success is None:
        return None
    after = now - previous_success
    spacing = longest_wait(interval, wait_hint)
    on_time = timedelta(seconds=spacing * (1 + LATE)) + LATE_MIN
    if failed_since or after > on_time:
        cause: Cause = "unpolled"
    else:
        cause = "site" if spacing > interval else "interval"
    return Gap(entries, after, cause, spacing)


def gap_alert(name: str, source_id: str, interval: int, gap: Gap) -> str | None:
    """What to tell the admins, or None when there is nothing they can change."""
    head = (
        f"Source {name} ({source_id}): all {gap.entries} entries of its last poll were new, "
        f"{duration(gap.after)} after the poll before, so older items may have left it unseen."
    )
    if gap.cause == "interval":
        return f"{head} If it publishes that fast, give it an interval shorter than {interval} s."
    if gap.cause == "site":
        return (
            f"{head} The site asks to be polled at most every {duration(gap.spacing)} "
            f"(Cache-Control, Expires or its feed's ttl), longer than the interval of "
            f"{interval} s, and metwatch honours that: a news-search source or a section "
            "feed of the site may cover what this one drops."
        )
    return None
