"""A source's health as its polls tell it: recorded on the source, and what the
admins are told of it.

Besides its items, a poll tells of its source that it was read (its validators
and next poll; recovered, if it was failing), that it failed (polled again after
a backoff, or when the site's Retry-After says; marked failing after
``failure_threshold`` failures in a row), that it has moved permanently, or that
every entry was new to it (a gap: older entries may have left the feed unseen).
Each is recorded where ``metwatch sources`` and the admin ``/status`` show it
(``SourceHealth``). What is news to the admins comes back as the alert's text,
for the pipeline to send: it holds the admins' hook, and sends a source's
"recovered" alert too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from metwatch.errors import FetchError, SourceError
from metwatch.models import FetchResult, Item, SourceSpec, SourceState
from metwatch.offload import ReadFeed
from metwatch.store import SqlStore
from watchers import schedule
from watchers.gaps import MIN_GAP_ENTRIES, Gap, find_gap, gap_alert

log = logging.getLogger(__name__)


class HealthRecorder:
    """Records a poll's success, failure, move or gap on its source; returns the
    admins' alert."""

    def __init__(self, store: SqlStore, *, failure_threshold: int, max_backoff: int) -> None:
        self.store = store
        #: Failures in a row that mark a source failing (and tell the admins).
        self.failure_threshold = failure_threshold
        #: The longest backoff (seconds) after failures, unless the interval is longer.
        self.max_backoff = max_backoff
        #: Sources whose long feed the log has told of (``ReadFeed.listed``).
        self._told_long: set[str] = set()

    def record_failure(
        self, spec: SourceSpec, state: SourceState, e: SourceError, now: datetime
    ) -> str | None:
        """A failed poll: the next one after a backoff, and not before the site's
        Retry-After; the alert when the source has just become failing."""
        retry_after = e.retry_after if isinstance(e, FetchError) else None
        next_poll = schedule.after_failure(
            now, spec.interval, state.error_count + 1,
            max_backoff=self.max_backoff, retry_after=retry_after,
        )  # fmt: skip
        held = None if retry_after is None else schedule.honoured(retry_after, spec.interval)
        newly_failing = self.store.record_failure(
            spec.id, now=now, next_poll=next_poll, error=e.message,
            threshold=self.failure_threshold, read_as=spec,
            held_until=now + timedelta(seconds=held) if held is not None else None,
        )  # fmt: skip
        log.warning("source %s failed: %s", spec.id, e)
        if not newly_failing:
            return None
        return (
            f"Source {spec.name} ({spec.id}) is failing after "
            f"{state.error_count + 1} attempts: {e.message}"
        )

    def record_success(
        self, spec: SourceSpec, fetched: FetchResult, read: ReadFeed, new_items: int,
        now: datetime, wait_hint: float | None,
    ) -> bool:  # fmt: skip
        """A poll that read its body: its validators, the feed's refresh hint and the
        next poll (after ``wait_hint``, the longest the site asks for). Whether the
        source had been failing (it has recovered)."""
        # A body that does not hold everything read (a sitemap index) is fetched in
        # full each time: its 304 would hide what changed in its children.
        revalidate = read.revalidates
        hint = read.refresh_hint
        recovered = self.store.record_success(
            spec.id, now=now, new_items=new_items, read_as=spec,
            etag=fetched.etag if revalidate else None,
            last_modified=fetched.last_modified if revalidate else None,
            refresh_hint=None if hint is None else schedule.honoured(hint, spec.interval),
            next_poll=schedule.after_success(now, spec.interval, wait_hint),
        )  # fmt: skip
        if read.listed is not None and spec.id not in self._told_long:
            self._told_long.add(spec.id)  # once per run: it says so at every poll
            log.warning(
                "source %s lists %d entries: %d of them are read (the first and the "
                "newest)", spec.id, read.listed, len(read.items),
            )  # fmt: skip
        return recovered

    def record_move(self, spec: SourceSpec, moved_to: str | None) -> str | None:
        """After a good poll through permanent redirects (to ``moved_to``): poll the
        new address from now on (a redirect on every poll is a request the site need
        not answer), and tell the admins once, since only the rules file can make the
        move last.

        Only after the poll succeeded: a feed redirected to a home page by mistake
        is not a move to remember.
        """
        if moved_to is None:
            return None
        if moved_to == spec.url:  # moved back to where the rules file says it is
            self.store.record_move(spec.id, spec.url, None)
            return None
        if not self.store.record_move(spec.id, spec.url, moved_to):
            return None  # the rules file's address changed meanwhile: its own polls decide
        log.info("source %s has moved permanently to %s", spec.id, moved_to)
        return (
            f"Source {spec.name} ({spec.id}) has moved permanently to {moved_to}; metwatch "
            "polls it there now. Put the new address in the rules file."
        )

    def record_gap(self, spec: SourceSpec, gap: Gap, now: datetime) -> str | None:
        """A gap ``poll_gap`` found; its alert, unless the admins can change nothing
        about it or were told of a gap of this source within the day (``GAP_QUIET``)."""
        after = int(gap.after.total_seconds())
        alert = gap_alert(spec.name, spec.id, spec.interval, gap)
        told = self.store.record_gap(spec.id, now, gap.entries, after, alert=alert is not None)
        return alert if told else None


async def poll_gap(
    spec: SourceSpec, state: SourceState, items: Sequence[Item], new: Sequence[Item],
    now: datetime, wait_hint: float | None, had_items: Callable[[], Awaitable[bool]],
) -> Gap | None:  # fmt: skip
    """Whether every entry was new to a source that had items before: older ones
    may have left it unseen in between (``watchers.gaps``). ``had_items`` asks
    the store, only when every entry is new.

    Never missing an item is up to the interval: a feed shows its newest
    entries only, and what scrolled off between two polls cannot be fetched.
    This is how metwatch notices, and says so.
    """
    entries = len({i.id for i in items})
    if entries < MIN_GAP_ENTRIES or len(new) < entries:
        return None  # the usual case, decided without the store
    return find_gap(
        entries, len(new), now=now, interval=spec.interval, wait_hint=wait_hint,
        had_items=await had_items(), previous_success=state.last_success_at,
        due_at=state.due_at, failed_since=state.error_count > 0,
    )  # fmt: skip


def unexpected_error(error: Exception) -> str:
    """The sentence recorded for an error metwatch did not expect (a bug)."""
    detail = (str(error).splitlines() or [""])[0][:200]
    return f"metwatch failed reading this source ({type(error).__name__}: {detail}); see the log"
