"""``metwatch run``'s ticks start polls and return: a slow site delays no other source,
and a stop cancels the polls under way, handing their sources' claims back."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from metwatch.app import Service
from metwatch.settings import load_settings
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, rss

ITEM = FeedItem(title="London news", link="https://news.example.com/a", guid="a")
#: Seconds the slow site takes to answer: longer than the test waits for the quick one.
SLOW = 6.0


async def _until(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_a_source_due_while_another_is_slow_is_polled_at_once(
    tmp_path: Path, feed_server: FeedServer, db_url: str
) -> None:
    feed_server.serve("/slow.xml", rss([ITEM]), delay=SLOW)
    feed_server.serve("/quick.xml", rss([ITEM]))
    sources = [
        {"id": "slow", "name": "Slow", "url": feed_server.url("/slow.xml"), "interval": 600},
        {"id": "quick", "name": "Quick", "url": feed_server.url("/quick.xml"), "interval": 600},
    ]
    settings = load_settings(
        database_url=db_url, rules_path=write_rules(tmp_path, sources), tick_seconds=0.2,
        deliver_seconds=0.2, health_port=0, http_timeout=SLOW * 2,
    )  # fmt: skip
    service = Service(settings)
    soon = service.clock() + timedelta(seconds=1)  # not overdue when run starts: not spread
    for source in sources:
        service.store.release_claim(str(source["id"]), soon)
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    try:
        # Both were due at start: the slow site is still answering its poll.
        assert await _until(lambda: feed_server.hits("/quick.xml") == 1, timeout=4)
        assert await _until(lambda: _polled(service, "quick"), timeout=3)
        started = time.monotonic()
        service.store.release_claim("quick", service.clock())  # due again now

        assert await _until(lambda: feed_server.hits("/quick.xml") == 2, timeout=SLOW / 2)
        assert time.monotonic() - started < SLOW / 2
        assert not _polled(service, "slow")  # its poll is still under way
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)

    # The stop cancelled the slow poll and handed its claim back: due at once on restart.
    slow = {h.id: h for h in service.store.source_health()}["slow"]
    assert slow.last_success is None and slow.last_error is None
    assert slow.next_poll is not None and slow.next_poll <= service.clock()


def _polled(service: Service, source_id: str) -> bool:
    health = {h.id: h for h in service.store.source_health()}
    return health[source_id].last_success is not None
