"""``metwatch run``'s ticks start polls and return: a slow site delays no other source,
and a stop cancels the polls under way, handing their sources' claims back.

Ticks then overlap, each with its polls in the background, under one bound on polls
in flight: a source is polled once at a time, a stop hands back every claim (polls
waiting for their turn too), a slow site keeps no 304 unrecorded, and /healthz says
so when every batch of polls fails."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import metwatch.pipeline as pipeline_module
from classifiers.rules import load_rules
from metwatch.app import Service
from metwatch.errors import StoreError
from metwatch.models import SourceSpec
from metwatch.not_modified import NOT_MODIFIED_WAIT
from metwatch.pipeline import MAX_POLLS_IN_FLIGHT, Pipeline, PollResult
from metwatch.settings import load_settings
from metwatch.store import open_store
from metwatch.store.sources import CLAIM_LEASE
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, rss
from watchers.fetch import Fetcher, FetchLimits

ITEM = FeedItem(title="London news", link="https://news.example.com/a", guid="a")
#: Seconds the slow site takes to answer: longer than the test waits for the quick one.
SLOW = 6.0
START = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)


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
    service = _service(tmp_path, db_url, sources, http_timeout=SLOW * 2)
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


def _service(
    tmp_path: Path, db_url: str, sources: list[dict[str, object]], **settings: object
) -> Service:
    """``metwatch run``'s service on ``sources``: ticks and drains every 0.2 s."""
    return Service(load_settings(**{
        "database_url": db_url, "rules_path": write_rules(tmp_path, sources),
        "tick_seconds": 0.2, "deliver_seconds": 0.2, "health_port": 0, **settings,
    }))  # fmt: skip


def _pipeline(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient,
    intervals: dict[str, int], now: list[datetime], *, max_concurrent: int = 8,
) -> Pipeline:  # fmt: skip
    """A pipeline polling ``/ID.xml`` of ``feed_server`` for each source, on the
    clock ``now[0]``."""
    sources = [{"id": i, "name": i, "url": feed_server.url(f"/{i}.xml"), "interval": n}
               for i, n in intervals.items()]  # fmt: skip
    limits = FetchLimits(max_concurrent=max_concurrent, per_host=8)
    fetcher = Fetcher(client, max_bytes=10_000_000, limits=limits)
    rules = load_rules(write_rules(tmp_path, sources))
    pipeline = Pipeline(open_store(db_url), fetcher, rules, clock=lambda: now[0],
                        allow_private=True)  # fmt: skip
    pipeline.sync_sources()
    return pipeline


async def test_a_stop_hands_back_the_claims_of_polls_still_waiting_for_their_turn(
    tmp_path: Path, feed_server: FeedServer, db_url: str
) -> None:
    """20 slow sources: 16 polls run, 4 wait for their turn; a stop hands back all
    20 claims, so a restart polls them at once."""
    n = MAX_POLLS_IN_FLIGHT + 4
    for i in range(n):
        feed_server.serve(f"/s{i}.xml", rss([ITEM]), delay=30)
    sources = [
        {"id": f"s{i:02d}", "name": f"S{i}", "url": feed_server.url(f"/s{i}.xml"), "interval": 600}
        for i in range(n)
    ]
    service = _service(tmp_path, db_url, sources, http_timeout=60, max_concurrent_fetches=8,
                       max_fetches_per_host=64)  # fmt: skip
    soon = service.clock() + timedelta(seconds=0.5)
    for s in sources:
        service.store.release_claim(str(s["id"]), soon)
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    try:
        assert await _until(
            lambda: sum(feed_server.hits(f"/s{i}.xml") for i in range(n)) >= 8,
            timeout=5,
        )
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    still_claimed = sorted(
        h.id
        for h in service.store.source_health()
        if h.next_poll is not None and h.next_poll > service.clock() + timedelta(minutes=5)
    )
    assert still_claimed == []


async def test_one_source_is_not_polled_twice_at_once_by_overlapping_ticks(
    tmp_path: Path, feed_server: FeedServer, db_url: str
) -> None:
    """A poll still under way when its claim's lease runs out (article pages,
    timeouts): the next tick claims the source again, but does not poll it twice."""
    feed_server.serve("/slow.xml", rss([ITEM]), delay=3)
    now = [START]
    async with httpx.AsyncClient(timeout=30) as client:
        pipeline = _pipeline(tmp_path, db_url, feed_server, client, {"slow": 600}, now)
        pipeline.store.release_claim("slow", now[0])
        first = asyncio.create_task(pipeline.tick())  # as Service.tick starts it
        assert await _until(lambda: feed_server.hits("/slow.xml") == 1, 2)
        now[0] += CLAIM_LEASE + timedelta(seconds=1)  # the lease runs out; a tick comes
        second = asyncio.create_task(pipeline.tick())
        await asyncio.sleep(0.5)
        hits_while_first_runs = feed_server.hits("/slow.xml")
        await asyncio.gather(first, second)
    assert hits_while_first_runs == 1


async def test_a_source_queued_past_its_lease_is_still_polled_once(
    tmp_path: Path, feed_server: FeedServer, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polls wait for their turn (every fetch timing out, say); a claimed source waits
    past CLAIM_LEASE, and a later tick claims it again: it is still polled once."""
    monkeypatch.setattr(pipeline_module, "MAX_POLLS_IN_FLIGHT", 1)  # 2 at once (2 x 1 fetch)
    for name in ("h1", "h2"):
        feed_server.serve(f"/{name}.xml", rss([ITEM]), delay=2)
    feed_server.serve("/q.xml", rss([ITEM]))
    now = [START]
    async with httpx.AsyncClient(timeout=30) as client:
        pipeline = _pipeline(tmp_path, db_url, feed_server, client,
                             {"h1": 600, "h2": 600, "q": 600}, now, max_concurrent=1)  # fmt: skip
        for n, late in (("h1", 3), ("h2", 2), ("q", 1)):  # most overdue first
            pipeline.store.release_claim(n, now[0] - timedelta(seconds=late))
        first = asyncio.create_task(pipeline.tick())
        await asyncio.sleep(0.3)  # h1, h2 hold the two turns; q waits for one
        now[0] += CLAIM_LEASE + timedelta(seconds=1)
        second = asyncio.create_task(pipeline.tick())
        results = await asyncio.gather(first, second)
    polled = [r.source_id for batch in results for r in batch]
    assert polled.count("q") == 1, polled
    assert feed_server.hits("/q.xml") == 1


async def test_a_slow_site_delays_no_other_source_answering_304(
    tmp_path: Path, feed_server: FeedServer, db_url: str
) -> None:
    """A source that answered 304 beside a slow one is recorded within
    NOT_MODIFIED_WAIT, not when the slow poll ends: it is polled when due again."""
    feed_server.serve("/slow.xml", rss([ITEM]), delay=4)
    feed_server.serve("/quick.xml", rss([ITEM]), etag='"v1"')
    now = [START]
    async with httpx.AsyncClient(timeout=30) as client:
        pipeline = _pipeline(tmp_path, db_url, feed_server, client,
                             {"slow": 600, "quick": 60}, now)  # fmt: skip
        pipeline.store.release_claim("quick", now[0])
        await pipeline.tick()  # quick: 200 with an ETag, recorded
        now[0] += timedelta(seconds=61)
        pipeline.store.release_claim("slow", now[0])
        first = asyncio.create_task(pipeline.tick())  # slow, and quick (304)
        assert await _until(lambda: feed_server.hits("/quick.xml") == 2, 2)
        await asyncio.sleep(NOT_MODIFIED_WAIT + 0.5)  # its 304 is written meanwhile
        now[0] += timedelta(seconds=61)  # quick is due again; slow still answering
        await pipeline.tick()
        hits = feed_server.hits("/quick.xml")
        await first
    assert hits == 3


async def test_healthz_scheduler_check_fails_when_every_batch_fails(
    tmp_path: Path, feed_server: FeedServer, db_url: str
) -> None:
    """The scheduler ticks, but every batch of polls fails (a StoreError the ping
    does not see): /healthz says the scheduler is not well."""
    sources = [{"id": "a", "name": "A", "url": feed_server.url("/a.xml"), "interval": 600}]
    service = _service(tmp_path, db_url, sources, tick_seconds=0.1, deliver_seconds=5)

    async def broken(**_: object) -> list[object]:
        raise StoreError("items table locked")

    service.pipeline.tick = broken  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    await asyncio.sleep(1.0)
    checks = service.health_checks()
    stop.set()
    await asyncio.wait_for(running, 10)
    assert checks["scheduler"] is False, checks


async def test_a_tick_cancelled_before_its_polls_start_hands_back_their_claims(
    tmp_path: Path, feed_server: FeedServer, db_url: str
) -> None:
    for i in ("a", "b"):
        feed_server.serve(f"/{i}.xml", rss([ITEM]), delay=5)
    now = [START]
    async with httpx.AsyncClient(timeout=30) as client:
        pipeline = _pipeline(tmp_path, db_url, feed_server, client, {"a": 600, "b": 600}, now)
        for i in ("a", "b"):
            pipeline.store.release_claim(i, now[0])
        tick = asyncio.create_task(pipeline.tick())
        await asyncio.sleep(0)  # the tick claims both and gathers; its polls have not started
        tick.cancel()
        with pytest.raises(asyncio.CancelledError):
            await tick
    claimed = [
        h.id
        for h in pipeline.store.source_health()
        if h.next_poll is not None and h.next_poll > now[0]
    ]
    assert claimed == [], claimed


async def test_healthz_stays_unwell_while_every_batch_that_polls_fails(
    tmp_path: Path, feed_server: FeedServer, db_url: str
) -> None:
    feed_server.serve("/a.xml", rss([ITEM]))
    sources = [{"id": "a", "name": "A", "url": feed_server.url("/a.xml"), "interval": 600}]
    service = _service(tmp_path, db_url, sources, tick_seconds=0.1, deliver_seconds=5)
    service.store.release_claim("a", service.clock() + timedelta(seconds=0.5))
    polls: list[str] = []

    async def broken(spec: SourceSpec, state: object) -> PollResult:  # the database fails
        polls.append(spec.id)
        raise StoreError("items table locked")

    service.pipeline.poll = broken  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    assert await _until(lambda: polls, 3)
    await asyncio.sleep(0.5)  # ticks go on; "a" is claimed, so they poll nothing
    checks = service.health_checks()
    stop.set()
    await asyncio.wait_for(running, 10)
    assert polls == ["a"]
    assert checks["scheduler"] is False, (
        checks
    )  # the ticks after it, with nothing to poll, say nothing
