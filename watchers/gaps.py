"""Gaps: a poll that finds every entry new may have missed what left the feed.

A feed shows its newest entries only; what scrolled off between two polls cannot
be fetched afterwards. When every entry of a poll is new to a source that had
items before, some may have been missed. Why decides what to tell the admins:

* ``interval``: the schedule spaced the two polls by the source's interval:
  the source publishes faster than that; a shorter interval helps;
* ``site``: the schedule waited longer, as the site's hint (Cache-Control,
  Expires, ttl) asked; a shorter interval would not help, another source might;
* ``unpolled``: polls failed in between, this poll came late (metwatch was not
  running, or busy), or something else spaced the polls (``poll --once`` from
  cron): recorded and shown, but not alerted; there is no setting to change.
  A source marked failing that recovers with such a gap says so in its
  "recovered" alert (``recovered_alert``): what it published while it failed
  may be gone from the feed, and someone should look at the site.

The schedule's own spacing is the time the poll was due (``next_poll_at`` when
claimed) less the previous good poll: a site's hint at that poll decided it, and
an ``Expires`` hint differs from one answer to the next.

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
#: How late a poll may come after it was due, or how much longer than the interval
#: the schedule may space polls, and still be on schedule: ticks, a full worker
#: pool and a busy site delay polls.
LATE = timedelta(minutes=2)
LATE_SHARE = 0.5

Cause = Literal["interval", "site", "unpolled"]


@dataclass(frozen=True, slots=True)
class Gap:
    """A poll found all ``entries`` new, ``after`` the source's previous good poll."""

    entries: int
    after: timedelta
    cause: Cause
    #: How long the schedule waited after the previous good poll.
    planned: timedelta


def find_gap(
    entries: int, new: int, *, had_items: bool, previous_success: datetime | None,
    due_at: datetime | None, failed_since: bool, now: datetime, interval: int,
    wait_hint: float | None,
) -> Gap | None:  # fmt: skip
    """The gap a poll shows, if any.

    ``entries``: distinct entries in the body; ``new``: how many were new;
    ``had_items``: the source stored items before; ``previous_success``: its last
    good poll as it is read now (None: never); ``due_at``: when this poll was due
    (None: now); ``failed_since``: polls failed after the previous good one;
    ``wait_hint``: the site's longest hint in this answer (seconds).
    """
    if entries < MIN_GAP_ENTRIES or new < entries or not had_items or previous_success is None:
        return None
    due = due_at or now
    after, planned = now - previous_success, due - previous_success
    return Gap(entries, after, _cause(planned, now - due, failed_since, interval, wait_hint),
               planned)  # fmt: skip


def _cause(
    planned: timedelta, late: timedelta, failed_since: bool, interval: int, wait_hint: float | None
) -> Cause:
    allowance = LATE + timedelta(seconds=interval * LATE_SHARE)
    if failed_since or late > allowance:
        return "unpolled"
    if planned <= timedelta(seconds=interval) + LATE:
        return "interval"
    # Longer than the interval: only a site's hint makes the schedule wait longer;
    # if the site gives none now, something else spaced the polls.
    return "site" if longest_wait(interval, wait_hint) > interval else "unpolled"


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
            f"{head} The site asks to be polled at most every {duration(gap.planned)} "
            f"(Cache-Control, Expires or its feed's ttl), longer than the interval of "
            f"{interval} s, and metwatch honours that: a news-search source or a section "
            "feed of the site may cover what this one drops."
        )
    return None


def recovered_alert(name: str, source_id: str, gap: Gap | None) -> str:
    """The alert for a failing source's first good poll; ``gap``: what that poll showed."""
    text = f"Source {name} ({source_id}) has recovered."
    if gap is None:
        return text
    return (
        f"{text} All {gap.entries} entries of its first good poll were new, "
        f"{duration(gap.after)} after the last good one: items it published while "
        "failing may have left the feed unseen; its site shows what they were."
    )
