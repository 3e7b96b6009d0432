"""Gaps: a poll that finds every entry new may have missed items that left the feed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx

from bot.views import source_line
from metwatch.models import SourceHealth
from metwatch.pipeline import Pipeline
from metwatch.store.sources import GAP_QUIET
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, rss
from tests.watchers.test_moved_sources import _alerts
from tests.watchers.test_polling import NOW, _pipeline, _poll_all


def _items(*names: str) -> list[FeedItem]:
    return [FeedItem(title=f"Story {n}", link=f"https://news.example.com/{n}", guid=n)
            for n in names]  # fmt: skip


def _health(pipeline: Pipeline) -> SourceHealth:
    [health] = pipeline.store.source_health()
    return health


async def _poll(pipeline: Pipeline, server: FeedServer, *names: str) -> int:
    """Serve the feed with these entries, poll it; how many were new."""
    server.serve("/feed.xml", rss(_items(*names)))
    outcome = (await _poll_all(pipeline))["news"].value
    assert outcome is not None and not isinstance(outcome, Exception)
    return len(outcome.new_items)


async def test_a_feed_that_turned_over_completely_is_reported_once(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/feed.xml")})
    alerts = _alerts(pipeline)

    assert await _poll(pipeline, feed_server, "a", "b", "c") == 3  # a first poll: no gap
    assert await _poll(pipeline, feed_server, "d", "a", "b") == 1  # overlaps: no gap
    assert _health(pipeline).gap_at is None and alerts == []

    assert await _poll(pipeline, feed_server, "g", "f", "e") == 3  # nothing of before left
    health = _health(pipeline)
    assert (health.gap_at, health.gap_entries) == (NOW, 3)
    [alert] = alerts
    assert alert.startswith("Source news (news): all 3 entries of its last poll were new")
    assert "interval shorter than 300 s" in alert
    assert "possible gap 15 Aug 12:00: all 3 entries were new" in source_line(health, NOW)
    assert "possible gap" not in source_line(health, NOW + timedelta(days=8))

    # It happens again within the day: recorded, not told again; after a quiet
    # day, told again.
    pipeline.clock = lambda: NOW + timedelta(hours=1)
    assert await _poll(pipeline, feed_server, "j", "i", "h") == 3
    assert _health(pipeline).gap_at == NOW + timedelta(hours=1) and len(alerts) == 1
    pipeline.clock = lambda: NOW + timedelta(hours=1) + GAP_QUIET
    assert await _poll(pipeline, feed_server, "m", "l", "k") == 3
    assert len(alerts) == 2


async def test_small_feeds_and_known_links_are_not_gaps(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/feed.xml")})
    alerts = _alerts(pipeline)
    assert await _poll(pipeline, feed_server, "a", "b") == 2
    # Two entries, both new: a feed this small turns over with every new item.
    assert await _poll(pipeline, feed_server, "c", "d") == 2
    # New GUIDs on links already seen are not new items, so not a turnover.
    feed_server.serve("/feed.xml", rss([
        FeedItem(title=f"Story {n}", link=f"https://news.example.com/{n}", guid=f"{n}-2")
        for n in ("a", "b", "c")
    ]))  # fmt: skip
    outcome = (await _poll_all(pipeline))["news"].value
    assert outcome is not None and not isinstance(outcome, Exception)
    assert outcome.new_items == ()
    assert _health(pipeline).gap_at is None and alerts == []
