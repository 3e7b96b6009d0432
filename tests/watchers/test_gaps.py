"""Gaps: a poll that finds every entry new may have missed items that left the feed.

When the poll before was on schedule, admins are told why and what would help;
after failures or downtime the gap is recorded and shown, not alerted; a new
address, kind or link selector starts the source afresh (no gap, no stale 304).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.views import source_line
from classifiers.rules import RuleSet, load_rules
from metwatch.durations import duration
from metwatch.models import SourceHealth, SourceSpec
from metwatch.pipeline import Pipeline
from metwatch.store import open_store
from metwatch.store.sources import CLAIM_LEASE, GAP_QUIET
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, rss
from tests.watchers.test_moved_sources import _alerts
from tests.watchers.test_polling import NOW, _pipeline, _poll_all
from watchers.gaps import Gap, find_gap, gap_alert

INTERVAL = 300  # _pipeline's sources


def _items(*names: str) -> list[FeedItem]:
    return [FeedItem(title=f"Story {n}", link=f"https://news.example.com/{n}", guid=n)
            for n in names]  # fmt: skip


def _health(pipeline: Pipeline) -> SourceHealth:
    [health] = pipeline.store.source_health()
    return health


async def _poll(
    pipeline: Pipeline, server: FeedServer, *names: str, at: datetime, ttl: int | None = None
) -> int:
    """Serve the feed with these entries, poll it at ``at``; how many were new."""
    server.serve("/feed.xml", rss(_items(*names), ttl=ttl))
    pipeline.clock = lambda: at
    outcome = (await _poll_all(pipeline))["news"].value
    assert outcome is not None and not isinstance(outcome, Exception), outcome
    return len(outcome.new_items)


async def _fail(pipeline: Pipeline, server: FeedServer, *times: datetime) -> None:
    """The feed answers HTTP 500 to a poll at each of ``times``."""
    server.serve("/feed.xml", "broken", status=500)
    for at in times:
        pipeline.clock = lambda at=at: at  # type: ignore[misc]
        assert isinstance((await _poll_all(pipeline))["news"].value, Exception)


async def test_a_feed_that_turned_over_on_schedule_is_reported_once_a_day(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/feed.xml")})
    alerts = _alerts(pipeline)
    step = timedelta(seconds=INTERVAL)

    assert await _poll(pipeline, feed_server, "a", "b", "c", at=NOW) == 3  # first poll: no gap
    assert await _poll(pipeline, feed_server, "d", "a", "b", at=NOW + step) == 1  # overlaps
    assert _health(pipeline).gap_at is None and alerts == []

    gap_time = NOW + 2 * step
    assert await _poll(pipeline, feed_server, "g", "f", "e", at=gap_time) == 3  # none of before
    health = _health(pipeline)
    assert (health.gap_at, health.gap_entries, health.gap_after) == (gap_time, 3, INTERVAL)
    [alert] = alerts
    assert alert.startswith(
        "Source news (news): all 3 entries of its last poll were new, 5 min after the poll "
        "before, so older items may have left it unseen."
    )
    assert alert.endswith("give it an interval shorter than 300 s.")
    line = source_line(health, gap_time)
    assert "possible gap 15 Aug 12:10: all 3 entries were new 5 min after the poll before" in line
    assert "possible gap" not in source_line(health, gap_time + timedelta(days=8))

    # Again at the next poll: recorded, not told again within the day.
    assert await _poll(pipeline, feed_server, "j", "i", "h", at=gap_time + step) == 3
    assert _health(pipeline).gap_at == gap_time + step and len(alerts) == 1
    # A day of polls on schedule that overlap, then a turnover: told again.
    day_later = gap_time + step + GAP_QUIET
    assert await _poll(pipeline, feed_server, "k", "j", "i", at=day_later - step) == 1
    assert await _poll(pipeline, feed_server, "n", "m", "l", at=day_later) == 3
    assert len(alerts) == 2


async def test_a_site_that_asks_for_longer_waits_is_named_instead_of_the_interval(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/feed.xml")})
    alerts = _alerts(pipeline)
    hour = timedelta(hours=1)
    # ttl 60: the feed asks to be read at most hourly, longer than the 300 s interval.
    assert await _poll(pipeline, feed_server, "a", "b", "c", at=NOW, ttl=60) == 3
    assert await _poll(pipeline, feed_server, "f", "e", "d", at=NOW + hour, ttl=60) == 3

    [alert] = alerts
    assert "1 h after the poll before" in alert
    assert "The site asks to be polled at most every 1 h (Cache-Control" in alert
    assert "interval shorter" not in alert  # a shorter interval would not help


async def test_a_gap_after_failures_or_downtime_is_shown_not_alerted(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/feed.xml")})
    alerts = _alerts(pipeline)
    step = timedelta(seconds=INTERVAL)
    assert await _poll(pipeline, feed_server, "a", "b", "c", at=NOW) == 3

    # One failed poll (below the failing threshold), then everything is new.
    await _fail(pipeline, feed_server, NOW + step)
    assert await _poll(pipeline, feed_server, "f", "e", "d", at=NOW + 2 * step) == 3
    health = _health(pipeline)
    assert (health.gap_entries, health.gap_after) == (3, 2 * INTERVAL)
    assert alerts == []  # the failure is the cause, not the interval

    # metwatch was not running for six hours: the gap is shown with its spacing.
    back = NOW + 2 * step + timedelta(hours=6)
    assert await _poll(pipeline, feed_server, "i", "h", "g", at=back) == 3
    health = _health(pipeline)
    assert health.gap_after == 6 * 3600
    assert "all 3 entries were new 6 h after the poll before" in source_line(health, back)
    assert alerts == []

    # Those gaps told nobody, so the first on schedule is told at once.
    assert await _poll(pipeline, feed_server, "l", "k", "j", at=back + step) == 3
    [alert] = alerts
    assert "5 min after the poll before" in alert and "interval shorter" in alert


async def test_a_failing_source_that_recovers_with_a_gap_says_so_in_its_recovery(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/feed.xml")})
    alerts = _alerts(pipeline)
    assert await _poll(pipeline, feed_server, "a", "b", "c", at=NOW) == 3
    await _fail(pipeline, feed_server, NOW + timedelta(hours=1), NOW + timedelta(hours=2))
    assert len(alerts) == 1 and "is failing" in alerts[0]  # the failure threshold is 2

    back = NOW + timedelta(hours=3)
    assert await _poll(pipeline, feed_server, "f", "e", "d", at=back) == 3
    assert alerts[1] == (
        "Source news (news) has recovered. All 3 entries of its first good poll were new, "
        "3 h after the last good one: items it published while failing may have left the "
        "feed unseen; its site shows what they were."
    )
    assert len(alerts) == 2  # the gap itself is recorded, not alerted again
    assert _health(pipeline).gap_after == 3 * 3600

    # A recovery whose first good poll overlaps what was stored says only that.
    await _fail(pipeline, feed_server, NOW + timedelta(hours=4), NOW + timedelta(hours=5))
    assert await _poll(pipeline, feed_server, "g", "f", "e", at=NOW + timedelta(hours=6)) == 1
    assert alerts[-1] == "Source news (news) has recovered."


async def test_small_feeds_and_known_links_are_not_gaps(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/feed.xml")})
    alerts = _alerts(pipeline)
    step = timedelta(seconds=INTERVAL)
    assert await _poll(pipeline, feed_server, "a", "b", at=NOW) == 2
    # Two entries, both new: a feed this small turns over with every new item.
    assert await _poll(pipeline, feed_server, "c", "d", at=NOW + step) == 2
    # New GUIDs on links already seen are not new items, so not a turnover.
    feed_server.serve("/feed.xml", rss([
        FeedItem(title=f"Story {n}", link=f"https://news.example.com/{n}", guid=f"{n}-2")
        for n in ("a", "b", "c")
    ]))  # fmt: skip
    pipeline.clock = lambda: NOW + 2 * step
    outcome = (await _poll_all(pipeline))["news"].value
    assert outcome is not None and not isinstance(outcome, Exception)
    assert outcome.new_items == ()
    assert _health(pipeline).gap_at is None and alerts == []


async def test_a_new_address_is_read_afresh_without_a_gap(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/feed.xml")})
    alerts = _alerts(pipeline)
    assert await _poll(pipeline, feed_server, "a", "b", "c", at=NOW) == 3

    feed_server.serve("/other.xml", rss(_items("x", "y", "z")))
    pipeline.use_rules(load_rules(write_rules(tmp_path, [
        {"id": "news", "name": "news", "url": feed_server.url("/other.xml"), "interval": INTERVAL}
    ])))  # fmt: skip
    assert _health(pipeline).last_success is None  # at this address: never
    pipeline.clock = lambda: NOW + timedelta(seconds=INTERVAL)
    outcome = (await _poll_all(pipeline))["news"].value
    assert outcome is not None and not isinstance(outcome, Exception)
    assert len(outcome.new_items) == 3
    assert _health(pipeline).gap_at is None and alerts == []


LISTING = """<html><body>
<ul class="old">{old}</ul><ul class="new">{new}</ul>
</body></html>"""


async def test_a_new_link_selector_reads_the_page_again_without_a_gap(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    def links(prefix: str) -> str:
        return "".join(f'<li><a href="/{prefix}{n}">{prefix} story {n}</a></li>' for n in range(4))

    feed_server.serve("/listing/", LISTING.format(old=links("old"), new=links("new")),
                      content_type="text/html", etag="v1")  # fmt: skip

    def page(selector: str) -> RuleSet:
        sources = [{"id": "page", "name": "Page", "kind": "page", "interval": INTERVAL,
                    "url": feed_server.url("/listing/"), "link_selector": selector}]  # fmt: skip
        return load_rules(write_rules(tmp_path, sources))

    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/feed.xml")})
    alerts = _alerts(pipeline)
    pipeline.use_rules(page("ul.old a"))  # the page replaces the feed

    async def poll(at: datetime) -> int | None:
        pipeline.clock = lambda: at
        outcome = (await _poll_all(pipeline))["page"].value
        assert not isinstance(outcome, Exception), outcome
        return None if outcome is None else len(outcome.new_items)

    assert await poll(NOW) == 4
    assert await poll(NOW + timedelta(minutes=5)) is None  # 304: the page is unchanged
    pipeline.use_rules(page("ul.new a"))
    # The page has not changed, but it is read with another selector now: a full GET.
    assert await poll(NOW + timedelta(minutes=10)) == 4
    [health] = pipeline.store.source_health()
    assert health.gap_at is None and alerts == []
    assert [r.headers.get("if-none-match") for r in feed_server.requests("/listing/")] == [
        None, '"v1"', None,
    ]  # fmt: skip


def check_racing_instances_alert_one_gap_once(db_url: str) -> None:
    """Instances recording gaps of one source at once: exactly one is told to alert;
    gaps recorded without an alert do not hold the next one back."""
    instances = [open_store(db_url) for _ in range(4)]
    spec = SourceSpec("s", "S", "feed", "http://127.0.0.1:9/s", INTERVAL)
    instances[0].sync_sources([spec], lambda s: NOW)
    assert not instances[0].record_gap("s", NOW - GAP_QUIET / 2, 3, 6 * 3600, alert=False)

    def record(n: int) -> list[bool]:
        return [instances[n].record_gap("s", NOW, 3, INTERVAL, alert=True) for _ in range(5)]

    with ThreadPoolExecutor(4) as pool:
        told = [t for calls in pool.map(record, range(4)) for t in calls]
    assert told.count(True) == 1
    assert not instances[0].record_gap("s", NOW + GAP_QUIET / 2, 4, INTERVAL, alert=True)
    assert instances[1].record_gap("s", NOW + GAP_QUIET, 5, INTERVAL, alert=True)
    [health] = instances[2].source_health()
    assert (health.gap_at, health.gap_entries, health.gap_after) == (NOW + GAP_QUIET, 5, INTERVAL)
    for store in instances:
        store.engine.dispose()


def test_racing_instances_alert_one_gap_once(db_url: str) -> None:
    check_racing_instances_alert_one_gap_once(db_url)


def check_a_poll_of_the_old_reading_restores_nothing(db_url: str) -> None:
    """A rules reload gives a source a new selector while a poll of the old one is in
    flight: the poll's validators and success time are not written back, so the new
    selector's first poll is a full GET and no gap."""
    store = open_store(db_url)
    old = SourceSpec("p", "P", "page", "http://127.0.0.1:9/p", INTERVAL, "ul.old a")
    new = SourceSpec("p", "P", "page", "http://127.0.0.1:9/p", INTERVAL, "ul.new a")
    store.sync_sources([old], lambda s: NOW)
    store.record_success("p", now=NOW, next_poll=NOW, etag='"v1"', last_modified=None,
                         new_items=4, read_as=old)  # fmt: skip
    [state] = store.claim_due_sources(NOW)
    assert (state.etag, state.last_success_at, state.due_at) == ('"v1"', NOW, NOW)

    store.sync_sources([new], lambda s: NOW)  # the reload, mid-poll
    later = NOW + timedelta(minutes=5)
    store.record_success("p", now=later, next_poll=later, etag='"v2"', last_modified=None,
                         new_items=0, read_as=old)  # fmt: skip
    store.record_not_modified([("p", later)], later, {"p": old})
    [state] = store.claim_due_sources(later)
    assert (state.etag, state.last_success_at) == (None, None)
    # Bookkeeping that does not depend on the reading is kept.
    [health] = store.source_health()
    assert (health.items_seen, health.next_poll) == (4, later + CLAIM_LEASE)

    store.record_success("p", now=later, next_poll=later, etag='"v3"', last_modified=None,
                         new_items=4, read_as=new)  # fmt: skip
    [state] = store.claim_due_sources(later)
    assert (state.etag, state.last_success_at) == ('"v3"', later)
    store.engine.dispose()


def test_a_poll_of_the_old_reading_restores_nothing(db_url: str) -> None:
    check_a_poll_of_the_old_reading_restores_nothing(db_url)


def _find(after: timedelta, **given: object) -> Gap | None:
    """A gap found ``after`` the previous good poll, polled when due unless given."""
    args: dict[str, object] = {
        "had_items": True, "previous_success": NOW - after, "failed_since": False,
        "now": NOW, "due_at": NOW, "interval": INTERVAL, "wait_hint": None,
    }  # fmt: skip
    return find_gap(5, 5, **(args | given))  # type: ignore[arg-type]


MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("after", "given", "cause"),
    [
        (5 * MINUTE, {}, "interval"),
        # On schedule allows for slow ticks: two minutes over the interval, or late.
        (7 * MINUTE, {}, "interval"),
        (7 * MINUTE + timedelta(seconds=1), {}, "unpolled"),  # and no hint: cron, by hand
        (9 * MINUTE, {"due_at": NOW - 4 * MINUTE}, "interval"),  # 4 min late: a busy tick
        (10 * MINUTE, {"due_at": NOW - 5 * MINUTE}, "unpolled"),  # later: was not running
        (5 * MINUTE, {"failed_since": True}, "unpolled"),
        (timedelta(hours=1), {"wait_hint": 3600.0}, "site"),
        # The schedule's wait, not this answer's hint, decides: an Expires shortens.
        (50 * MINUTE, {"wait_hint": 600.0}, "site"),
        (5 * MINUTE, {"wait_hint": 3600.0}, "interval"),
        # A hint shorter than the interval changes nothing.
        (5 * MINUTE, {"wait_hint": 60.0}, "interval"),
    ],
)
def test_a_gap_is_blamed_on_what_spaced_the_polls(
    after: timedelta, given: dict[str, object], cause: str
) -> None:
    gap = _find(after, **given)
    assert gap is not None and gap.cause == cause and gap.after == after


def test_the_site_alert_names_the_schedule_s_wait() -> None:
    gap = _find(50 * MINUTE, wait_hint=600.0)
    assert gap is not None
    alert = gap_alert("News", "news", INTERVAL, gap)
    assert alert is not None and "at most every 50 min" in alert
    assert gap_alert("News", "news", INTERVAL, _find(5 * MINUTE, failed_since=True)) is None  # type: ignore[arg-type]


def test_no_gap_without_a_poll_before_or_with_an_entry_seen() -> None:
    assert _find(5 * MINUTE, previous_success=None) is None
    assert _find(5 * MINUTE, had_items=False) is None
    known = {
        "had_items": True, "previous_success": NOW - 5 * MINUTE, "due_at": NOW,
        "failed_since": False, "now": NOW, "interval": INTERVAL, "wait_hint": None,
    }  # fmt: skip
    assert find_gap(5, 4, **known) is None  # type: ignore[arg-type]
    assert find_gap(2, 2, **known) is None  # type: ignore[arg-type]
    assert find_gap(3, 3, **known) is not None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 h"),
     (36 * 3600, "36 h"), (2 * 86400, "2 days"), (9 * 86400 + 5, "9 days")],
)  # fmt: skip
def test_durations_in_words(seconds: int, words: str) -> None:
    assert duration(seconds) == words
    assert duration(timedelta(seconds=seconds)) == words
