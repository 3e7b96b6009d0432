"""When to poll a source next. Pure: the caller passes the clock.

* success: the source's interval less up to 10% jitter (so sources added
  together drift apart, and an item waits at most one interval), but never
  sooner than the server asked
  (Cache-Control max-age / Expires) or than the feed's own ttl;
* failure: exponential backoff per consecutive failure, capped, and never
  sooner than a Retry-After;
* a hint longer than ``MAX_HINT`` (a day) counts as a day: a ttl of a year or
  an Expires in 2099 is a misconfiguration, and must not silence a source;
* a new source: polled within 15 s, spread so that sources do not start together;
  a restart keeps each source's stored next poll (it neither polls everything at
  once nor waits a full interval for everything).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

JITTER = 0.1
#: The longest wait a site's hint can impose (longer when the interval is longer).
MAX_HINT = 24 * 3600.0


def honoured(hint: float, interval: int) -> float:
    """The part of a site's hint (seconds) the schedule honours: a year's ttl is a
    mistake, not a reason to go quiet."""
    return min(hint, max(MAX_HINT, float(interval)))


def longest_wait(interval: int, wait_hint: float | None = None) -> float:
    """The longest ``after_success`` waits (seconds): the interval, or the site's
    hint where it asks for longer."""
    return max(float(interval), honoured(wait_hint, interval) if wait_hint is not None else 0.0)


def after_success(
    now: datetime, interval: int, wait_hint: float | None = None, rng: random.Random | None = None
) -> datetime:
    rng = rng or random.Random()
    # Jitter below the interval: a new item is seen within one interval at worst.
    delay = interval * (1 - rng.uniform(0, JITTER))
    if wait_hint is not None:
        delay = max(delay, honoured(wait_hint, interval))
    return now + timedelta(seconds=delay)


def after_failure(
    now: datetime,
    interval: int,
    failures: int,
    *,
    max_backoff: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> datetime:
    rng = rng or random.Random()
    # interval, 2x, 4x, ... per consecutive failure, capped (never below the interval).
    backoff = interval * 2 ** max(failures - 1, 0)
    delay = min(backoff, max(max_backoff, interval)) * (1 + rng.uniform(0, JITTER))
    if retry_after is not None:
        delay = max(delay, honoured(retry_after, interval))
    return now + timedelta(seconds=delay)


#: A new source's first poll comes within this many seconds.
FIRST_POLL_WITHIN = 15.0


def first_poll(now: datetime, interval: int, rng: random.Random | None = None) -> datetime:
    """A new source is polled soon: within a tenth of its interval, at most 15 s."""
    rng = rng or random.Random()
    return now + timedelta(seconds=rng.uniform(0, min(interval * JITTER, FIRST_POLL_WITHIN)))


#: Sources overdue when metwatch starts are spread over at most this (seconds).
CATCH_UP_WITHIN = 300.0


def after_downtime(
    now: datetime, interval: int, overdue: timedelta, rng: random.Random | None = None
) -> datetime:
    """When a source ``overdue`` at start-up is polled: within a tenth of its interval,
    at most five minutes, so a restart after downtime does not poll everything at once
    (nor leave the sources bunched for the polls after); and within as long as it has
    been overdue, so a quick restart (a deploy) delays no poll by more than it did."""
    rng = rng or random.Random()
    within = min(interval * JITTER, CATCH_UP_WITHIN, max(overdue.total_seconds(), 0.0))
    return now + timedelta(seconds=rng.uniform(0, within))
