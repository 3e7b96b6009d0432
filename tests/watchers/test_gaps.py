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
from metwatch.store.sources import GAP_QUIET
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, rss
from tests.watchers.test_moved_sources import _alerts
from tests.watchers.test_polling import NOW, _pipeline, _poll_all
from watchers.gaps import Gap, find_gap

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
    feed_server.serve("/feed.xml", "broken", status=500)
    pipeline.clock = lambda: NOW + step
    assert isinstance((await _poll_all(pipeline))["news"].value, Exception)
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
    """Instances recording gaps of one source at once: exactly one is told to alert."""
    instances = [open_store(db_url) for _ in range(4)]
    spec = SourceSpec("s", "S", "feed", "http://127.0.0.1:9/s", INTERVAL)
    instances[0].sync_sources([spec], lambda s: NOW)

    def record(n: int) -> list[bool]:
        return [instances[n].record_gap("s", NOW, 3, INTERVAL) for _ in range(5)]

    with ThreadPoolExecutor(4) as pool:
        told = [t for calls in pool.map(record, range(4)) for t in calls]
    assert told.count(True) == 1
    assert not instances[0].record_gap("s", NOW + GAP_QUIET / 2, 4, INTERVAL)
    assert instances[1].record_gap("s", NOW + GAP_QUIET / 2 + GAP_QUIET, 5, INTERVAL)
    [health] = instances[2].source_health()
    assert (health.gap_entries, health.gap_after) == (5, INTERVAL)
    for store in instances:
        store.engine.dispose()


def test_racing_instances_alert_one_gap_once(db_url: str) -> None:
    check_racing_instances_alert_one_gap_once(db_url)


def _find(after: timedelta, **given: object) -> Gap | None:
    args: dict[str, object] = {
        "had_items": True, "previous_success": NOW - after, "failed_since": False,
        "now": NOW, "interval": INTERVAL, "wait_hint": None,
    }  # fmt: skip
    return find_gap(5, 5, **(args | given))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("after", "given", "cause"),
    [
        (timedelta(minutes=5), {}, "interval"),
        # On schedule allows for late ticks: 1.5 spacings and two minutes.
        (timedelta(seconds=INTERVAL * 1.5 + 120), {}, "interval"),
        (timedelta(seconds=INTERVAL * 1.5 + 121), {}, "unpolled"),
        (timedelta(minutes=5), {"failed_since": True}, "unpolled"),
        (timedelta(hours=1), {"wait_hint": 3600.0}, "site"),
        # A hint shorter than the interval changes nothing.
        (timedelta(minutes=5), {"wait_hint": 60.0}, "interval"),
        # A hint of a year is honoured as a day (watchers.schedule.MAX_HINT).
        (timedelta(days=2), {"wait_hint": 365 * 86400.0}, "unpolled"),
    ],
)
def test_a_gap_is_blamed_on_what_spaced_the_polls(
    after: timedelta, given: dict[str, object], cause: str
) -> None:
    gap = _find(after, **given)
    assert gap is not None and gap.cause == cause and gap.after == after


def test_no_gap_without_a_poll_before_or_with_an_entry_seen() -> None:
    assert _find(timedelta(minutes=5), previous_success=None) is None
    assert _find(timedelta(minutes=5), had_items=False) is None
    assert find_gap(5, 4, had_items=True, previous_success=NOW, failed_since=False, now=NOW,
                    interval=INTERVAL, wait_hint=None) is None  # fmt: skip
    assert find_gap(2, 2, had_items=True, previous_success=NOW, failed_since=False, now=NOW,
                    interval=INTERVAL, wait_hint=None) is None  # fmt: skip


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 h"),
     (36 * 3600, "36 h"), (2 * 86400, "2 days"), (9 * 86400 + 5, "9 days")],
)  # fmt: skip
def test_durations_in_words(seconds: int, words: str) -> None:
    assert duration(seconds) == words
    assert duration(timedelta(seconds=seconds)) == words
