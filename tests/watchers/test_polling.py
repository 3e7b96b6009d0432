"""Polling against the local feed server: errors are recorded per source, others go on."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event

from classifiers.rules import RuleSet, load_rules
from metwatch.errors import SourceError
from metwatch.models import RawEntry, SourceSpec
from metwatch.pipeline import Pipeline, PollResult
from metwatch.store import SqlStore, open_store
from metwatch.store.items import ItemEdit
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer, closed_port_url
from tests.support.feeds import FeedItem, rss
from tests.watchers.test_fulltext import ARTICLE_HTML
from watchers.fetch import Fetcher
from watchers.newest import FEED_MAX_ENTRIES
from watchers.normalise import normalise

DATA = Path(__file__).resolve().parent.parent / "data" / "feeds"
NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)
ITEM = FeedItem(title="London news", link="https://news.example.com/a", guid="a")


def _pipeline(
    tmp_path: Path, db_url: str, client: httpx.AsyncClient, urls: dict[str, str]
) -> Pipeline:
    sources = [{"id": k, "name": k, "url": v, "interval": 300} for k, v in urls.items()]
    rules: RuleSet = load_rules(write_rules(tmp_path, sources))
    store: SqlStore = open_store(db_url)
    fetcher = Fetcher(client, max_bytes=1_000_000, max_concurrent=4, per_host=2)
    pipeline = Pipeline(store, fetcher, rules, clock=lambda: NOW, failure_threshold=2)
    pipeline.sync_sources()
    return pipeline


async def _poll_all(pipeline: Pipeline) -> dict[str, PollResult]:
    return {r.source_id: r for r in await pipeline.tick(everything=True)}


BAD_SOURCES = {
    "refused": ("cannot connect", None),
    "timeout": ("timed out after 0.5 s", "/slow.xml"),
    "missing": ("HTTP 404", "/404.xml"),
    "gone": ("HTTP 410: the feed is gone", "/410.xml"),
    "broken-server": ("HTTP 500", "/500.xml"),
    "throttled": ("HTTP 429: asked to retry after 3600 s", "/429.xml"),
    "loop": ("too many redirects", "/loop-a"),
    "html": ("not a feed: got text/html", "/page.html"),
    "empty": ("empty response", "/empty-body.xml"),
    "huge": ("response larger than 1 MB: aborted", "/huge.xml"),
    "bomb": ("response larger than 1 MB: aborted", "/bomb.xml"),
}


def _serve_bad(server: FeedServer) -> dict[str, str]:
    server.serve("/slow.xml", rss([ITEM]), delay=2.0)
    server.serve("/404.xml", "nope", status=404)
    server.serve("/410.xml", "gone", status=410)
    server.serve("/500.xml", "oops", status=500)
    server.serve("/429.xml", "slow down", status=429, headers={"Retry-After": "3600"})
    server.redirect("/loop-a", "/loop-b")
    server.redirect("/loop-b", "/loop-a")
    server.serve("/page.html", (DATA / "not-a-feed.html").read_bytes(), content_type="text/html")
    server.serve("/empty-body.xml", b"")
    server.serve_stream("/huge.xml", 50_000_000)
    server.serve_gzip_bomb("/bomb.xml", 1_000_000_000)
    urls = {k: server.url(path) for k, (_, path) in BAD_SOURCES.items() if path}
    urls["refused"] = closed_port_url("/feed.xml")
    return urls


async def test_each_failure_is_recorded_and_good_sources_still_poll(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    urls = _serve_bad(feed_server)
    feed_server.serve("/good.xml", rss([ITEM]))
    urls["good"] = feed_server.url("/good.xml")
    pipeline = _pipeline(tmp_path, db_url, client, urls)

    results = await _poll_all(pipeline)

    good = results.pop("good").value
    assert good is not None and not isinstance(good, Exception)
    assert [i.title for i in good.new_items] == ["London news"]
    for source_id, (message, _) in BAD_SOURCES.items():
        error = results[source_id].value
        assert isinstance(error, SourceError), source_id
        assert message in error.message, (source_id, error.message)
    health = {h.id: h for h in pipeline.store.source_health()}
    assert health["missing"].last_error == "HTTP 404"
    assert health["good"].last_error is None and health["good"].items_seen == 1
    # Retry-After is honoured: the throttled source is not polled for an hour.
    throttled = health["throttled"].next_poll
    assert throttled is not None and (throttled - NOW).total_seconds() >= 3600


async def test_a_page_given_for_its_feed_fails_naming_the_feed(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    head = '<link rel="alternate" type="application/rss+xml" title="News" href="/news/rss.xml">'
    feed_server.serve("/news/", f"<html><head>{head}</head><body>News</body></html>",
                      content_type="text/html; charset=utf-8")  # fmt: skip
    pipeline = _pipeline(tmp_path, db_url, client, {"site": feed_server.url("/news/")})

    error = (await _poll_all(pipeline))["site"].value

    feed = feed_server.url("/news/rss.xml")
    named = f"not a feed: got text/html; the page names its feed: {feed}"
    assert isinstance(error, SourceError) and error.message == named
    assert {h.id: h for h in pipeline.store.source_health()}["site"].last_error == named


async def test_conditional_get_and_no_repeats(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    second = FeedItem(title="Second", link="https://news.example.com/b?utm_source=x", guid="b")
    feed_server.serve("/feed.xml", rss([ITEM]), etag='"v1"')
    pipeline = _pipeline(tmp_path, db_url, client, {"feed": feed_server.url("/feed.xml")})

    first = (await _poll_all(pipeline))["feed"].value
    assert first is not None and not isinstance(first, Exception) and len(first.new_items) == 1
    assert (await _poll_all(pipeline))["feed"].value is None  # 304 Not Modified
    assert feed_server.requests("/feed.xml")[-1].headers["if-none-match"] == '"v1"'

    # Re-ordered, re-published and duplicated entries: only the new one is new.
    feed_server.serve("/feed.xml", rss([second, ITEM, second]), etag='"v2"')
    third = (await _poll_all(pipeline))["feed"].value
    assert third is not None and not isinstance(third, Exception)
    assert [i.title for i in third.new_items] == ["Second"]
    assert third.new_items[0].url == "https://news.example.com/b"

    # One new article under two GUIDs in one body: one item (the first).
    feed_server.serve("/feed.xml", rss([
        FeedItem(title="Third", link="https://news.example.com/c", guid="c-1"),
        FeedItem(title="Third again", link="https://news.example.com/c?utm_source=y", guid="c-2"),
    ]), etag='"v3"')  # fmt: skip
    fourth = (await _poll_all(pipeline))["feed"].value
    assert fourth is not None and not isinstance(fourth, Exception)
    assert [i.title for i in fourth.new_items] == ["Third"]


async def test_an_edited_item_is_updated_not_repeated(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    feed_server.serve("/feed.xml", rss([ITEM]), etag='"v1"')
    pipeline = _pipeline(tmp_path, db_url, client, {"feed": feed_server.url("/feed.xml")})
    await _poll_all(pipeline)

    edited = FeedItem(title="London news (updated)", link=ITEM.link, guid=ITEM.guid,
                      description="<p>Now with a second paragraph.</p>")  # fmt: skip
    feed_server.serve("/feed.xml", rss([edited]), etag='"v2"')
    outcome = (await _poll_all(pipeline))["feed"].value

    assert outcome is not None and not isinstance(outcome, Exception)
    assert outcome.new_items == ()
    [stored] = pipeline.store.iter_items()
    assert (stored.title, stored.summary) == (
        "London news (updated)",
        "Now with a second paragraph.",
    )

    # Listed below a new GUID on the same link, the stored item's edit is still taken.
    again = FeedItem(title="London news (updated twice)", link=ITEM.link, guid=ITEM.guid)
    other = FeedItem(title="London news, republished", link=f"{ITEM.link}?utm_source=x",
                     guid="republished")  # fmt: skip
    feed_server.serve("/feed.xml", rss([other, again]), etag='"v3"')
    outcome = (await _poll_all(pipeline))["feed"].value
    assert outcome is not None and not isinstance(outcome, Exception)
    assert outcome.new_items == ()
    [stored] = pipeline.store.iter_items()
    assert stored.title == "London news (updated twice)"


async def test_malformed_feed_keeps_what_can_be_read(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    for name in ("broken", "latin1", "billion-laughs", "empty"):
        feed_server.serve(f"/{name}.xml", (DATA / f"{name}.xml").read_bytes(),
                          content_type="application/rss+xml")  # fmt: skip
    urls = {
        n: feed_server.url(f"/{n}.xml") for n in ("broken", "latin1", "billion-laughs", "empty")
    }
    pipeline = _pipeline(tmp_path, db_url, client, urls)

    results = await asyncio.wait_for(_poll_all(pipeline), 10)

    counts = {k: len(r.value.new_items) for k, r in results.items()}  # type: ignore[union-attr]
    assert counts == {"broken": 1, "latin1": 1, "billion-laughs": 1, "empty": 0}
    latin = results["latin1"].value
    assert latin is not None and not isinstance(latin, Exception)
    assert "Café" in latin.new_items[0].title and "£" in latin.new_items[0].title


async def test_source_marked_failing_after_threshold(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    alerts: list[str] = []
    feed_server.serve("/down.xml", "down", status=503)
    pipeline = _pipeline(tmp_path, db_url, client, {"down": feed_server.url("/down.xml")})

    async def alert(text: str) -> None:
        alerts.append(text)

    pipeline.alert_admins = alert
    for _ in range(4):
        await _poll_all(pipeline)
    assert len(alerts) == 1 and "is failing after 2 attempts: HTTP 503" in alerts[0]

    feed_server.serve("/down.xml", rss([ITEM]))
    await _poll_all(pipeline)
    assert len(alerts) == 2 and "recovered" in alerts[1]


async def test_never_polls_sooner_than_the_site_asks(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    feed_server.serve("/ttl.xml", rss([ITEM], ttl=120))  # minutes
    feed_server.serve("/cached.xml", rss([ITEM]), headers={"Cache-Control": "max-age=5400"})
    feed_server.serve("/plain.xml", rss([ITEM]))
    urls = {n: feed_server.url(f"/{n}.xml") for n in ("ttl", "cached", "plain")}
    pipeline = _pipeline(tmp_path, db_url, client, urls)

    await _poll_all(pipeline)

    wait = {
        h.id: (h.next_poll - NOW).total_seconds()
        for h in pipeline.store.source_health()
        if h.next_poll
    }
    assert wait["ttl"] >= 7200
    assert wait["cached"] >= 5400
    assert 270 <= wait["plain"] <= 300  # the interval less at most 10% jitter


async def test_a_hint_of_years_is_honoured_for_a_day_only(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    year = 365 * 24 * 60
    feed_server.serve("/ttl.xml", rss([ITEM], ttl=year * 1000))  # minutes: a thousand years
    feed_server.serve("/expires.xml", rss([ITEM]), headers={"Cache-Control": "max-age=99999999"})
    feed_server.serve("/429.xml", "later", status=429, headers={"Retry-After": "999999999"})
    urls = {n: feed_server.url(f"/{n}.xml") for n in ("ttl", "expires", "429")}
    pipeline = _pipeline(tmp_path, db_url, client, urls)

    await _poll_all(pipeline)

    for h in pipeline.store.source_health():
        assert h.next_poll is not None
        assert (h.next_poll - NOW).total_seconds() == pytest.approx(24 * 3600, rel=0.11), h.id


async def test_the_same_article_in_feeds_polled_together_is_stored_once(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    # Two outlets' feeds carry one article (its own GUID in each, the same link
    # once tracking is removed), and several sources are polled at once.
    for n in range(6):
        copy = FeedItem(
            title="Met inspection", guid=f"copy-{n}",
            link=f"https://news.example.com/met-report?utm_source=feed{n}",
        )  # fmt: skip
        feed_server.serve(f"/f{n}.xml", rss([copy, FeedItem(title=f"own {n}", guid=f"own-{n}")]))
    urls = {f"f{n}": feed_server.url(f"/f{n}.xml") for n in range(6)}
    pipeline = _pipeline(tmp_path, db_url, client, urls)

    await _poll_all(pipeline)

    stored = [i for i in pipeline.store.iter_items() if i.title == "Met inspection"]
    assert len(stored) == 1
    assert pipeline.store.count_items() == 7  # the article once, and each feed's own item


async def test_a_cancelled_tick_records_the_304s_it_got_and_releases_the_rest(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    feed_server.serve("/quick.xml", rss([ITEM]), etag="v1")
    feed_server.serve("/slow.xml", rss([ITEM]), etag="v1")
    urls = {n: feed_server.url(f"/{n}.xml") for n in ("quick", "slow")}
    pipeline = _pipeline(tmp_path, db_url, client, urls)
    await _poll_all(pipeline)
    feed_server.serve("/slow.xml", rss([ITEM]), etag="v2", delay=10)  # changed, and slow

    tick = asyncio.create_task(pipeline.tick(everything=True))
    while feed_server.hits("/quick.xml") < 2:  # the quick source has answered 304
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    tick.cancel()  # a shutdown, mid-tick
    with pytest.raises(asyncio.CancelledError):
        await tick

    next_poll = {h.id: h.next_poll for h in pipeline.store.source_health()}
    assert next_poll["slow"] == NOW  # handed back: polled at once after a restart
    quick = next_poll["quick"]  # recorded as a good poll, not left claimed for 10 minutes
    assert quick is not None and 270 <= (quick - NOW).total_seconds() <= 300


async def test_a_bug_met_by_one_source_is_recorded_on_it_and_the_tick_goes_on(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """No real input is known to raise an unexpected error (each found was fixed), so
    the reader is made to raise one for one source, as a bug would."""
    feed_server.serve("/bug.xml", rss([ITEM]))
    feed_server.serve("/cached.xml", rss([ITEM]), etag='"v1"')
    urls = {n: feed_server.url(f"/{n}.xml") for n in ("bug", "cached")}
    pipeline = _pipeline(tmp_path, db_url, client, urls)
    read = pipeline.reader.read

    async def read_with_a_bug(spec, fetched, now):  # type: ignore[no-untyped-def]
        if spec.id == "bug":
            raise TypeError("can't subtract offset-naive and offset-aware datetimes")
        return await read(spec, fetched, now)

    await _poll_all(pipeline)  # both read: the cached feed's ETag is stored
    monkeypatch.setattr(pipeline.reader, "read", read_with_a_bug)
    later = datetime(2024, 8, 15, 13, 0, tzinfo=UTC)
    pipeline.clock = lambda: later
    results = await _poll_all(pipeline)  # returns: the error does not escape the tick

    bug = results["bug"].value
    assert isinstance(bug, SourceError)
    assert bug.message == (
        "metwatch failed reading this source (TypeError: can't subtract offset-naive and "
        "offset-aware datetimes); see the log"
    )
    health = {h.id: h for h in pipeline.store.source_health()}
    assert health["bug"].last_error == bug.message and health["bug"].error_count == 1
    assert health["bug"].next_poll is not None and health["bug"].next_poll > later  # backoff
    # The other source's 304 in the same tick is recorded, not lost with the tick.
    assert results["cached"].value is None and health["cached"].last_success == later


async def test_a_failing_source_given_a_new_address_starts_afresh(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    """The user fixes a typo in a failing source's url: the old address's errors and
    backoff (hours, by then) do not hold the new one back."""
    feed_server.serve("/good.xml", rss([ITEM]))
    pipeline = _pipeline(tmp_path, db_url, client, {"s": feed_server.url("/typo.xml")})
    for _ in range(4):
        await _poll_all(pipeline)
    [failing] = pipeline.store.source_health()
    assert failing.failing and failing.last_error == "HTTP 404"
    assert failing.next_poll is not None and failing.next_poll > NOW + timedelta(minutes=30)

    sources = [{"id": "s", "name": "s", "url": feed_server.url("/good.xml"), "interval": 300}]
    pipeline.use_rules(load_rules(write_rules(tmp_path, sources)))

    [fixed] = pipeline.store.source_health()
    # Its errors were the old address's; "failing" stands until a good poll says it
    # has recovered (tests/watchers/test_source_changes.py).
    assert (fixed.failing, fixed.error_count, fixed.last_error) == (True, 0, None)
    assert fixed.next_poll is not None and fixed.next_poll <= NOW + timedelta(seconds=15)
    pipeline.clock = lambda: NOW + timedelta(seconds=15)
    [result] = await pipeline.tick()  # due: polled without being forced
    assert result.value is not None and not isinstance(result.value, Exception)
    assert [i.url for i in result.value.new_items] == [ITEM.link]


async def test_a_feeds_ttl_still_stands_when_it_answers_not_modified(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    """<ttl> is in the body, and a 304 has none: the last body's hint is kept."""
    feed_server.serve("/ttl.xml", rss([ITEM], ttl=60), etag='"v1"')  # minutes
    pipeline = _pipeline(tmp_path, db_url, client, {"ttl": feed_server.url("/ttl.xml")})
    at = NOW
    for _ in range(3):  # a full body, then two 304s
        pipeline.clock = lambda at=at: at  # type: ignore[misc]
        await pipeline.tick(everything=True)
        [health] = pipeline.store.source_health()
        assert health.next_poll is not None and health.next_poll - at >= timedelta(hours=1)
        at = health.next_poll
    assert [r.headers.get("if-none-match") for r in feed_server.requests("/ttl.xml")] == [
        None, '"v1"', '"v1"']  # fmt: skip


#: Breaking news: a headline that names no tracked topic, and no text yet.
STUB = FeedItem(title="Breaking: statement expected", link="https://news.example.com/met",
                guid="met-stub", description="More to follow.")  # fmt: skip
WRITTEN_UP = (
    "<p>Inspectors found that visits to registered sex offenders were announced in advance by "
    "the Metropolitan Police, giving offenders time to hide evidence.</p><p>One high-risk "
    "offender had not been visited since 2017, the report said.</p>"
)


async def test_a_stub_written_up_later_is_classified_again_and_alerts_once(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    feed_server.serve("/feed.xml", rss([STUB]), etag='"v1"')
    pipeline = _pipeline(tmp_path, db_url, client, {"feed": feed_server.url("/feed.xml")})
    first = (await _poll_all(pipeline))["feed"].value
    assert first is not None and not isinstance(first, Exception)
    assert len(first.new_items) == 1 and first.flagged == ()

    # The same entry (same GUID), now with the article's text: it matches now.
    written_up = replace(STUB, description=WRITTEN_UP)
    feed_server.serve("/feed.xml", rss([written_up]), etag='"v2"')
    second = (await _poll_all(pipeline))["feed"].value

    assert second is not None and not isinstance(second, Exception)
    assert second.new_items == ()  # not a new item: the stored one, edited
    [flagged] = second.flagged
    assert flagged.item.id == first.new_items[0].id
    assert {m.finding_id for m in flagged.matches} >= {"announced-visits", "unvisited-since-2017"}
    [story] = pipeline.store.recent_stories(10)
    assert [link.url for link in story.links] == [STUB.link]
    [stored] = pipeline.store.iter_items()
    assert "announced in advance" in stored.summary

    # A later edit of a flagged item updates its text and alerts no one again.
    again = replace(written_up, title="Met police warned offenders before visits")
    feed_server.serve("/feed.xml", rss([again]), etag='"v3"')
    third = (await _poll_all(pipeline))["feed"].value
    assert third is not None and not isinstance(third, Exception)
    assert third.new_items == () and third.flagged == ()
    [same_story] = pipeline.store.recent_stories(10)
    assert (same_story.id, same_story.revision) == (story.id, story.revision)
    [stored] = pipeline.store.iter_items()
    assert stored.title == "Met police warned offenders before visits"


def test_sorting_a_feed_writes_nothing_so_an_edit_is_not_lost_to_a_crash(
    tmp_path: Path, db_url: str
) -> None:
    """An edit is written with the poll's classification, in one transaction: a
    crash after sorting leaves the stored text, and the next poll sees the edit again."""
    store = open_store(db_url)
    source = {"id": "feed", "name": "Feed", "url": "http://news.example.com/f"}
    spec = load_rules(write_rules(tmp_path, [source])).sources[0]
    entry = RawEntry("a", STUB.link, STUB.title, "More.", "", None)
    stub = normalise(entry, spec, NOW)
    store.add_items([stub], NOW)
    edited = replace(stub, summary="More, much more.", content_hash="edited")

    for _ in range(2):  # sorted twice: the first sort wrote nothing
        found = store.sort_items([edited])
        assert (found.new, found.edited, found.unflagged_edits) == ((), (edited,), (edited,))
    [stored] = store.iter_items()
    assert stored.summary == "More."

    store.insert_items([], NOW, edits=[ItemEdit(i) for i in found.edited])
    [stored] = store.iter_items()
    assert stored.summary == "More, much more."
    assert store.sort_items([edited]).edited == ()


async def test_an_entry_with_an_unreadable_link_is_kept_without_it_and_the_feed_is_read(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    feed_server.serve("/feed.xml", rss([
        FeedItem(title="Good story", link="https://news.example.com/good", guid="g1"),
        FeedItem(title="Port typo", link="https://news.example.com:99999/bad", guid="g2"),
        FeedItem(title="Broken host", link="http://[broken/story", guid="g3"),
    ]))  # fmt: skip
    pipeline = _pipeline(tmp_path, db_url, client, {"feed": feed_server.url("/feed.xml")})

    outcome = (await _poll_all(pipeline))["feed"].value

    assert outcome is not None and not isinstance(outcome, Exception)
    stored = {i.title: i.url for i in pipeline.store.iter_items()}
    assert stored == {"Good story": "https://news.example.com/good", "Port typo": None,
                      "Broken host": None}  # fmt: skip
    [health] = pipeline.store.source_health()
    assert health.last_error is None and health.error_count == 0


async def test_an_edited_teaser_keeps_its_articles_text_and_the_page_is_fetched_once(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    article = feed_server.url("/news/met")
    feed_server.serve("/news/met", ARTICLE_HTML, content_type="text/html; charset=utf-8")
    teaser = FeedItem(title="Met criticised", link=article, guid="a-1", description="Teaser.")
    feed_server.serve("/feed.xml", rss([teaser]), etag='"v1"')
    rules = load_rules(write_rules(tmp_path, [{"id": "feed", "name": "Feed",
                                               "url": feed_server.url("/feed.xml")}]))  # fmt: skip
    fetcher = Fetcher(client, max_bytes=1_000_000, max_concurrent=4, per_host=2)
    pipeline = Pipeline(open_store(db_url), fetcher, rules, clock=lambda: NOW,
                        allow_private=True, fulltext_min_chars=400)  # fmt: skip
    pipeline.sync_sources()
    await _poll_all(pipeline)
    [stored] = pipeline.store.iter_items()
    assert "had not been visited since 2017" in stored.body

    feed_server.serve("/feed.xml", rss([replace(teaser, title="Met criticised (updated)")]),
                      etag='"v2"')  # fmt: skip
    await _poll_all(pipeline)

    [stored] = pipeline.store.iter_items()
    assert stored.title == "Met criticised (updated)"
    assert "had not been visited since 2017" in stored.body
    assert len(feed_server.requests("/news/met")) == 1


def check_a_feed_of_70000_entries_is_sorted_and_stored(db_url: str) -> None:
    """More entries than PostgreSQL's 65,535 parameters in a statement: the store's
    look-ups go in chunks, so a huge feed under the size cap is stored, not a crash
    of the whole tick."""
    store = open_store(db_url)
    spec = SourceSpec("big", "Big", "feed", "http://news.example.com/big.xml", 300)
    items = [
        normalise(
            RawEntry(f"g{n}", f"https://news.example.com/{n}", f"Story {n}", "", "", None),
            spec,
            NOW,
        )  # fmt: skip
        for n in range(70_000)
    ]
    try:
        assert len(store.add_items(items, NOW)) == 70_000
        edited = replace(items[-1], title="Story, edited", content_hash="edited")
        found = store.sort_items([*items[:-1], edited])
        assert (found.new, found.edited) == ((), (edited,))
        assert store.count_items() == 70_000
    finally:
        store.engine.dispose()


def test_a_feed_of_70000_entries_is_sorted_and_stored(db_url: str) -> None:
    check_a_feed_of_70000_entries_is_sorted_and_stored(db_url)


def test_edits_are_written_in_the_order_of_their_ids(db_url: str) -> None:
    """Two instances writing the same items (one's edits, the other's copies of them)
    lock their rows in one order: on PostgreSQL, opposite orders could deadlock."""
    store = open_store(db_url)
    spec = SourceSpec("feed", "Feed", "feed", "http://news.example.com/f", 300)
    items = [normalise(RawEntry(g, f"https://news.example.com/{g}", g, "", "", None), spec, NOW)
             for g in ("a", "b", "c")]  # fmt: skip
    store.add_items(items, NOW)
    written: list[list[str]] = []

    def record(conn: object, cursor: object, statement: str, parameters: object,
               context: object, executemany: bool) -> None:  # fmt: skip
        if statement.lstrip().upper().startswith("UPDATE ITEMS"):
            rows = parameters if executemany else [parameters]
            written.append([str(r) for r in rows])  # type: ignore[attr-defined]

    edits = [ItemEdit(replace(i, title=f"{i.title}, edited", content_hash=f"e{i.id}"))
             for i in reversed(items)]  # fmt: skip
    event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.insert_items([], NOW, edits=edits)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)

    assert len(written) == 1 and len(written[0]) == 3
    ids = sorted(i.id for i in items)
    assert [next(i for i in ids if i in row) for row in written[0]] == ids


async def test_a_feed_listing_more_than_the_limit_is_read_for_its_newest_entries(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """An archive feed, newest first: its first (and newest) ``FEED_MAX_ENTRIES`` are
    read, not the 200 oldest (each entry costs a look-up, a classification and a
    row, at every poll)."""
    total = FEED_MAX_ENTRIES + 200
    archive = [
        FeedItem(
            title=f"Story {n}",
            link=f"https://news.example.com/{n}",
            guid=f"s{n}",
            published=NOW - timedelta(hours=n),
        )  # fmt: skip
        for n in range(total)
    ]
    feed_server.serve("/archive.xml", rss(archive), etag='"v1"')
    pipeline = _pipeline(tmp_path, db_url, client, {"archive": feed_server.url("/archive.xml")})

    outcome = (await _poll_all(pipeline))["archive"].value

    assert outcome is not None and not isinstance(outcome, Exception)
    assert len(outcome.new_items) == FEED_MAX_ENTRIES
    stored = {i.title for i in pipeline.store.iter_items()}
    assert stored == {f"Story {n}" for n in range(FEED_MAX_ENTRIES)}
    assert f"lists {total} entries: {FEED_MAX_ENTRIES} of them are read" in caplog.text

    # A new entry on top is read at the next poll.
    latest = FeedItem(title="Latest", link="https://news.example.com/latest", guid="latest",
                      published=NOW)  # fmt: skip
    feed_server.serve("/archive.xml", rss([latest, *archive]), etag='"v2"')
    outcome = (await _poll_all(pipeline))["archive"].value
    assert outcome is not None and not isinstance(outcome, Exception)
    assert [i.title for i in outcome.new_items] == ["Latest"]
