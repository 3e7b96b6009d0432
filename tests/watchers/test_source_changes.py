"""A source's schedule across changes: a rules edit, a site's long hints, a run of
``poll --once`` beside the service; none may poll sooner than the site asks, and
a fixed source says it has recovered."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from classifiers.rules import load_rules
from metwatch.app import Service
from metwatch.models import SourceSpec
from metwatch.pipeline import Pipeline
from metwatch.settings import load_settings
from metwatch.store import open_store
from metwatch.store.sources import CLAIM_LEASE
from tests.metwatch.test_postgres import pg_url  # noqa: F401 (a fixture)
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer
from tests.support.feeds import rss
from tests.watchers.test_moved_sources import _alerts
from tests.watchers.test_polling import ITEM, NOW, _pipeline, _poll_all
from watchers.schedule import FIRST_POLL_WITHIN, MAX_HINT

WITHIN = timedelta(seconds=FIRST_POLL_WITHIN)


def _use_url(pipeline: Pipeline, tmp_path: Path, url: str) -> None:
    """The user edits the source's url in the rules file; the service reloads it."""
    sources = [{"id": "s", "name": "s", "url": url, "interval": 300}]
    pipeline.use_rules(load_rules(write_rules(tmp_path, sources)))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest, db_url: str) -> str:
    return db_url if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


async def test_a_ttl_of_years_is_kept_as_the_schedule_honours_it(
    tmp_path: Path, any_db: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    """<ttl>99999999</ttl> minutes: the stored hint is a day, as honoured (the raw
    value overflowed PostgreSQL's integer and failed every tick)."""
    feed_server.serve("/ttl.xml", rss([ITEM], ttl=99_999_999), etag='"v1"')
    pipeline = _pipeline(tmp_path, any_db, client, {"ttl": feed_server.url("/ttl.xml")})
    at = NOW
    try:
        for _ in range(2):  # a full body, then a 304 that uses the stored hint
            pipeline.clock = lambda at=at: at  # type: ignore[misc]
            [result] = await pipeline.tick(everything=True)
            assert not isinstance(result.value, Exception), result.value
            [health] = pipeline.store.source_health()
            assert health.next_poll is not None
            assert MAX_HINT <= (health.next_poll - at).total_seconds() <= MAX_HINT * 1.1
            at = health.next_poll
    finally:
        pipeline.store.engine.dispose()  # before the database is dropped


async def test_a_failing_source_given_a_new_address_says_it_recovered(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    feed_server.serve("/good.xml", rss([ITEM]))
    pipeline = _pipeline(tmp_path, db_url, client, {"s": feed_server.url("/typo.xml")})
    alerts = _alerts(pipeline)
    for _ in range(2):
        await _poll_all(pipeline)
    assert alerts == ["Source s (s) is failing after 2 attempts: HTTP 404"]

    _use_url(pipeline, tmp_path, feed_server.url("/good.xml"))
    [fixed] = pipeline.store.source_health()
    # The old address's errors are gone; "failing" stands until a good poll.
    assert (fixed.error_count, fixed.last_error, fixed.failing) == (0, None, True)
    pipeline.clock = lambda: NOW + WITHIN
    [result] = await pipeline.tick()
    assert not isinstance(result.value, Exception) and result.value is not None
    assert alerts[1:] == ["Source s (s) has recovered."]
    assert not pipeline.store.source_health()[0].failing


async def test_a_new_address_on_the_same_site_waits_for_its_retry_after(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    feed_server.serve("/a.xml", "slow down", status=429, headers={"Retry-After": "7200"})
    pipeline = _pipeline(tmp_path, db_url, client, {"s": feed_server.url("/a.xml")})
    await _poll_all(pipeline)

    _use_url(pipeline, tmp_path, feed_server.url("/b.xml"))  # the same site
    [same_site] = pipeline.store.source_health()
    assert same_site.next_poll is not None and same_site.next_poll >= NOW + timedelta(hours=2)

    other_site = feed_server.url("/b.xml").replace("127.0.0.1", "localhost")
    _use_url(pipeline, tmp_path, other_site)  # not polled: no name is looked up
    [moved] = pipeline.store.source_health()
    assert moved.next_poll is not None and moved.next_poll <= NOW + WITHIN


def test_a_failed_poll_of_the_old_address_is_not_recorded_on_the_new(db_url: str) -> None:
    """The poll was in flight when the rules changed the url: its error and backoff
    are the old address's."""
    store = open_store(db_url)
    old = SourceSpec("s", "s", "feed", "https://old.example/feed.xml", 300)
    new = SourceSpec("s", "s", "feed", "https://new.example/feed.xml", 300)
    store.sync_sources([old], lambda _: NOW)
    store.sync_sources([new], lambda _: NOW)

    newly = store.record_failure(
        "s", now=NOW, next_poll=NOW + timedelta(hours=3), error="HTTP 404", threshold=1,
        read_as=old,
    )  # fmt: skip

    [health] = store.source_health()
    assert not newly
    assert (health.error_count, health.last_error, health.next_poll) == (0, None, NOW)
    store.record_failure("s", now=NOW, next_poll=NOW, error="HTTP 500", threshold=1, read_as=new)
    assert store.source_health()[0].last_error == "HTTP 500"  # the new address's own: kept


def test_poll_once_does_not_take_a_new_source_another_instance_is_polling(
    db_url: str,
) -> None:
    store = open_store(db_url)
    store.sync_sources([SourceSpec("new", "New", "feed", "https://x.example/", 300)],
                       lambda _: NOW + WITHIN)  # fmt: skip
    later = NOW + WITHIN
    assert [s.id for s in store.claim_due_sources(later)] == ["new"]  # the service polls it

    store.make_new_due(later, WITHIN)  # poll --once, meanwhile

    assert store.claim_due_sources(later) == []
    assert store.claim_due_sources(later + CLAIM_LEASE) != []  # the lease still runs out


def test_a_shorter_interval_brings_the_next_poll_forward(db_url: str) -> None:
    """A daily source set to five minutes (as a gap alert advises) is polled one new
    interval after its last poll, not after the rest of the day; never before the
    feed's ttl, and a failing source keeps its backoff."""
    store = open_store(db_url)
    daily = [SourceSpec(n, n, "feed", f"https://{n}.example/feed.xml", 86400)
             for n in ("plain", "ttl", "failing")]  # fmt: skip
    store.sync_sources(daily, lambda _: NOW)
    for spec in daily:
        store.claim_due_sources(NOW)
        store.record_success(spec.id, now=NOW, new_items=1, read_as=spec, etag=None,
                             last_modified=None, refresh_hint=3600 if spec.id == "ttl" else None,
                             next_poll=NOW + timedelta(days=1))  # fmt: skip
    store.record_failure("failing", now=NOW, next_poll=NOW + timedelta(hours=6), error="HTTP 500",
                         threshold=5, read_as=daily[2])  # fmt: skip

    reload_at = NOW + timedelta(minutes=10)
    store.sync_sources([replace(s, interval=300) for s in daily], lambda _: reload_at)

    due = {h.id: h.next_poll for h in store.source_health()}
    assert due == {"plain": reload_at, "ttl": NOW + timedelta(hours=1),
                   "failing": NOW + timedelta(hours=6)}  # fmt: skip
    # Longer again: the next poll stays (the next success schedules it).
    store.sync_sources(daily, lambda _: reload_at)
    assert {h.id: h.next_poll for h in store.source_health()} == due


async def _started_after_downtime(
    tmp_path: Path, db_url: str, interval: int, down: timedelta
) -> tuple[Service, datetime]:
    """Thirty sources, last polled an ``interval`` before they came due, overdue by
    ``down`` when ``metwatch run`` starts (and winds down at once: the schedule as
    start-up left it). Returns the service and when it started."""
    sources = [{"id": f"s{n:02d}", "name": f"S{n}", "url": f"http://127.0.0.1:9/{n}.xml",
                "interval": interval} for n in range(30)]  # fmt: skip
    service = Service(
        load_settings(database_url=db_url, rules_path=write_rules(tmp_path, sources))
    )
    started = service.clock()
    for spec in service.rules.sources:
        service.store.record_success(
            spec.id, now=started - down - timedelta(seconds=interval), new_items=0,
            read_as=spec, etag=None, last_modified=None, next_poll=started - down,
        )  # fmt: skip
    stop = asyncio.Event()
    stop.set()
    await service.run(stop)
    await service.close()
    return service, started


async def test_a_restart_after_downtime_spreads_the_overdue_sources(
    tmp_path: Path, db_url: str
) -> None:
    """Thirty sources overdue after two hours down: ``metwatch run`` polls them over a
    tenth of their interval instead of all in its first tick."""
    service, started = await _started_after_downtime(tmp_path, db_url, 900, timedelta(hours=2))

    due = [h.next_poll for h in service.store.source_health()]
    assert all(d is not None and started <= d <= started + timedelta(seconds=90) for d in due)
    assert len(set(due)) == 30
    assert service.store.claim_due_sources(started) == []


async def test_a_quick_restart_delays_no_source_by_more_than_it_was_overdue(
    tmp_path: Path, db_url: str
) -> None:
    """A deploy: down for ten seconds. The sources that came due meanwhile are polled
    within those ten seconds again, not spread over a tenth of their interval."""
    service, started = await _started_after_downtime(tmp_path, db_url, 3600, timedelta(seconds=10))

    due = [h.next_poll for h in service.store.source_health()]
    assert all(d is not None and started <= d <= started + timedelta(seconds=11) for d in due)
    assert len(set(due)) == 30  # still spread, over those seconds


def test_a_sites_retry_after_holds_its_other_feeds_too(db_url: str) -> None:
    """One feed answered 429 with Retry-After: an hour. The site's other feeds wait
    that hour as well; a feed of another site does not."""
    store = open_store(db_url)
    specs = [SourceSpec("a", "A", "feed", "https://site.example/a.xml", 300),
             SourceSpec("b", "B", "feed", "https://SITE.example/b.xml", 300),
             SourceSpec("c", "C", "feed", "https://other.example/c.xml", 300)]  # fmt: skip
    store.sync_sources(specs, lambda _: NOW)
    hour = NOW + timedelta(hours=1)

    store.record_failure("a", now=NOW, next_poll=hour, error="HTTP 429: asked to retry after "
                         "3600 s", threshold=5, read_as=specs[0], held_until=hour)  # fmt: skip

    due = {h.id: h.next_poll for h in store.source_health()}
    assert due == {"a": hour, "b": hour, "c": NOW}
    assert [s.id for s in store.claim_due_sources(NOW + timedelta(minutes=30))] == ["c"]
    # A new address for b on the same site still waits (as for a itself).
    store.sync_sources([specs[0], replace(specs[1], url="https://site.example/b2.xml"), specs[2]],
                       lambda _: NOW + timedelta(minutes=31))  # fmt: skip
    assert {h.id: h.next_poll for h in store.source_health()}["b"] == hour
