"""Page and sitemap sources and the full-text step, through the real pipeline."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from classifiers.rules import load_rules
from metwatch.errors import ParseError, RulesError
from metwatch.models import RawEntry
from metwatch.pipeline import Pipeline
from metwatch.store import open_store
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, rss
from tests.watchers.test_fulltext import ARTICLE_HTML, NOISE
from tests.watchers.test_pages import LISTING_HTML, SELECTOR
from watchers.fetch import Fetcher, FetchLimits
from watchers.newest import newest_entries

NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)
REPORT = "/news/london/news/2024/august/response-to-hmicfrs-peel-report/"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2, follow_redirects=True, max_redirects=5) as c:
        yield c


def _serve_site(server: FeedServer) -> None:
    # Every link local: a test must not look up outside names.
    listing = LISTING_HTML.replace("https://news.met.police.uk/news/", "/")
    server.serve("/news/london/", listing, content_type="text/html")
    for path in (REPORT, "/news/london/2024/august/man-charged-hackney/", "/appeal-e1-2024",
                 "/officer-dismissed/", "/articles/plain", "/articles/teaser"):  # fmt: skip
        server.serve(path, ARTICLE_HTML, content_type="text/html")
    server.serve("/sitemap-index.xml", f"""<sitemapindex
        xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <sitemap><loc>{server.url("/sitemap-old.xml")}</loc><lastmod>2023-01-01</lastmod></sitemap>
        <sitemap><loc>{server.url("/sitemap-new.xml")}</loc><lastmod>2024-08-15</lastmod></sitemap>
        </sitemapindex>""", content_type="application/xml")  # fmt: skip
    server.serve("/sitemap-new.xml", f"""<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <url><loc>{server.url("/articles/plain")}</loc><lastmod>2024-08-15</lastmod></url>
        </urlset>""", content_type="application/xml")  # fmt: skip
    server.serve("/sitemap-old.xml", "<urlset/>", content_type="application/xml")
    server.serve("/feed.xml", rss([FeedItem(title="Met criticised", guid="t",
                                            link=server.url("/articles/teaser"))]))  # fmt: skip


async def test_page_sitemap_and_teaser_sources_get_full_text_once(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    _serve_site(feed_server)
    rules = load_rules(write_rules(tmp_path, [
        {"id": "met-news", "name": "Met", "kind": "page", "interval": 300,
         "url": feed_server.url("/news/london/"), "link_selector": SELECTOR},
        {"id": "courier", "name": "Courier", "kind": "sitemap", "interval": 300,
         "url": feed_server.url("/sitemap-index.xml")},
        {"id": "feed", "name": "Feed", "interval": 300, "url": feed_server.url("/feed.xml")},
    ]))  # fmt: skip
    fetcher = Fetcher(client, max_bytes=1_000_000)
    pipeline = Pipeline(open_store(db_url), fetcher, rules, clock=lambda: NOW,
                        allow_private=True, fulltext_min_chars=400)  # fmt: skip
    pipeline.sync_sources()

    first = {r.source_id: r.value for r in await pipeline.tick(everything=True)}
    second = {r.source_id: r.value for r in await pipeline.tick(everything=True)}

    items = {i.url: i for o in first.values() if o and not isinstance(o, Exception)
             for i in o.new_items}  # fmt: skip
    assert len(items) == 6, first  # 4 listing links, 1 from the sitemap, 1 from the feed
    plain = items[feed_server.url("/articles/plain")]
    assert plain.title.startswith("Met Police failing")  # from the page: the sitemap has none
    stored = {i.url: i for i in pipeline.store.iter_items()}
    for url in (feed_server.url(REPORT), feed_server.url("/articles/teaser")):
        assert "announced in advance" in stored[url].body
        assert not any(n in stored[url].body for n in NOISE)
    assert all(o is None or o.new_items == () for o in second.values())  # type: ignore[union-attr]
    for path in (REPORT, "/articles/plain", "/articles/teaser"):
        assert feed_server.hits(path) == 1, path  # fetched once, not again on the second poll
    assert feed_server.hits("/sitemap-old.xml") == 2  # both children read on each poll


def test_rules_check_names_a_bad_selector(tmp_path: Path) -> None:
    page = {"id": "p", "name": "P", "kind": "page", "url": "https://x.example/"}
    path = write_rules(tmp_path, [{**page, "link_selector": "a["}])
    with pytest.raises(RulesError, match=r"watch-rules\.yaml:\d+:\d+: invalid CSS selector 'a\['"):
        load_rules(path)
    path = write_rules(tmp_path, [{**page, "kind": "sitemap", "link_selector": "a"}])
    with pytest.raises(RulesError, match="only read for page sources"):
        load_rules(path)
    # A disabled source may be unfinished: the file loads; a complete one can be previewed.
    path = write_rules(tmp_path, [
        {**page, "link_selector": "a[", "enabled": False},
        {**page, "id": "q", "link_selector": "a", "enabled": False},
        {**page, "id": "r", "enabled": False},
    ])  # fmt: skip
    rules = load_rules(path)
    assert rules.sources == () and [s.id for s in rules.disabled_sources] == ["q"]


def _urlset(*links: str) -> str:
    urls = "".join(f"<url><loc>{link}</loc><lastmod>2024-08-15</lastmod></url>" for link in links)
    return f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


async def test_a_sitemap_index_unchanged_still_has_its_children_read(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    """A static index with an ETag over a changing news sitemap (a common layout): the
    index's 304 would hide the child's new story, so an index is fetched in full; a
    plain sitemap keeps its conditional GET."""
    xml = "application/xml"
    index = f"""<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <sitemap><loc>{feed_server.url("/news.xml")}</loc></sitemap></sitemapindex>"""
    feed_server.serve("/index.xml", index, content_type=xml, etag="static")
    feed_server.serve("/news.xml", _urlset("https://news.example.com/a"), content_type=xml)
    feed_server.serve("/plain.xml", _urlset("https://news.example.com/p"), content_type=xml,
                      etag="plain")  # fmt: skip
    rules = load_rules(write_rules(tmp_path, [
        {"id": "index", "name": "Index", "kind": "sitemap", "interval": 300,
         "url": feed_server.url("/index.xml")},
        {"id": "plain", "name": "Plain", "kind": "sitemap", "interval": 300,
         "url": feed_server.url("/plain.xml")},
    ]))  # fmt: skip
    pipeline = Pipeline(open_store(db_url), Fetcher(client, max_bytes=1_000_000), rules,
                        clock=lambda: NOW, allow_private=True)  # fmt: skip
    pipeline.sync_sources()
    await pipeline.tick(everything=True)
    feed_server.serve("/news.xml", _urlset("https://news.example.com/b", "https://news.example.com/a"),
                      content_type=xml)  # fmt: skip

    second = {r.source_id: r.value for r in await pipeline.tick(everything=True)}

    outcome = second["index"]
    assert outcome is not None and not isinstance(outcome, Exception), outcome
    assert [i.url for i in outcome.new_items] == ["https://news.example.com/b"]
    assert [r.headers.get("if-none-match") for r in feed_server.requests("/index.xml")] == [
        None, None]  # fmt: skip
    assert second["plain"] is None  # 304: not modified
    assert [r.headers.get("if-none-match") for r in feed_server.requests("/plain.xml")] == [
        None, '"plain"']  # fmt: skip


async def test_a_gzipped_sitemap_is_inflated_only_up_to_the_response_cap(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    """0.2 MB of gzip that inflates past the 1 MB cap is refused with a sentence (it
    used to be read up to the protocol's 50 MB), and the other source is polled."""
    links = [f"https://news.example.com/story-{n:06d}" for n in range(20_000)]
    body = gzip.compress(_urlset(*links).encode(), 9)
    assert len(body) < 300_000
    feed_server.serve("/big.xml.gz", body, content_type="application/x-gzip")
    feed_server.serve("/small.xml", _urlset("https://news.example.com/a"),
                      content_type="application/xml")  # fmt: skip
    rules = load_rules(write_rules(tmp_path, [
        {"id": "big", "name": "Big", "kind": "sitemap", "url": feed_server.url("/big.xml.gz")},
        {"id": "small", "name": "Small", "kind": "sitemap", "url": feed_server.url("/small.xml")},
    ]))  # fmt: skip
    pipeline = Pipeline(open_store(db_url), Fetcher(client, max_bytes=1_000_000), rules,
                        clock=lambda: NOW, allow_private=True)  # fmt: skip
    pipeline.sync_sources()

    results = {r.source_id: r.value for r in await pipeline.tick(everything=True)}

    assert isinstance(results["big"], ParseError)
    assert results["big"].message == "sitemap larger than 1 MB once decompressed: not read"
    small = results["small"]
    assert small is not None and not isinstance(small, Exception)
    assert [i.url for i in small.new_items] == ["https://news.example.com/a"]


async def test_the_same_article_new_in_two_feeds_in_one_tick_is_fetched_once(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    article = feed_server.url("/news/met")
    feed_server.serve("/news/met", ARTICLE_HTML, content_type="text/html; charset=utf-8",
                      delay=0.3)  # fmt: skip
    feed_server.serve("/a.xml", rss([FeedItem(title="Met criticised", link=article, guid="a-1",
                                              description="Teaser.")]))  # fmt: skip
    feed_server.serve("/b.xml", rss([FeedItem(title="Met criticised",
                                              link=f"{article}?utm_source=b", guid="b-1",
                                              description="Teaser.")]))  # fmt: skip
    rules = load_rules(write_rules(tmp_path, [
        {"id": "a", "name": "A", "url": feed_server.url("/a.xml")},
        {"id": "b", "name": "B", "url": feed_server.url("/b.xml")},
    ]))  # fmt: skip
    pipeline = Pipeline(open_store(db_url), Fetcher(client, max_bytes=1_000_000), rules,
                        clock=lambda: NOW, allow_private=True, fulltext_min_chars=400)  # fmt: skip
    pipeline.sync_sources()

    await pipeline.tick(everything=True)

    assert len(feed_server.requests("/news/met")) == 1
    [stored] = pipeline.store.iter_items()
    assert "had not been visited since 2017" in stored.body


async def test_a_url_added_at_the_end_of_a_long_undated_sitemap_is_read(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    """More than the 100 entries a poll keeps, no dates, newest last: the new URL is
    kept all the same (both ends of the document are)."""

    def undated(n: int) -> str:
        urls = "".join(f"<url><loc>https://news.example.com/story-{i}</loc></url>"
                       for i in range(n))  # fmt: skip
        return f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'

    feed_server.serve("/sitemap.xml", undated(150), content_type="application/xml")
    source = {"id": "s", "name": "S", "kind": "sitemap", "url": feed_server.url("/sitemap.xml")}
    rules = load_rules(write_rules(tmp_path, [source]))
    pipeline = Pipeline(open_store(db_url), Fetcher(client, max_bytes=1_000_000), rules,
                        clock=lambda: NOW, allow_private=True)  # fmt: skip
    pipeline.sync_sources()
    await pipeline.tick(everything=True)
    assert pipeline.store.count_items() == 100
    feed_server.serve("/sitemap.xml", undated(151), content_type="application/xml")

    [result] = await pipeline.tick(everything=True)

    outcome = result.value
    assert outcome is not None and not isinstance(outcome, Exception), outcome
    assert [i.url for i in outcome.new_items] == ["https://news.example.com/story-150"]


def test_newest_entries_keeps_the_dated_newest_first_then_both_ends_of_the_undated() -> None:
    def entry(n: int, day: int | None = None) -> RawEntry:
        when = datetime(2024, 8, day, tzinfo=UTC) if day else None
        return RawEntry(None, f"https://x.example/{n}", "", "", "", when)

    entries = [entry(0), entry(1, day=1), entry(2), entry(3), entry(4, day=9), entry(5), entry(6)]

    assert [e.link for e in newest_entries(entries, 5)] == [
        "https://x.example/4", "https://x.example/1",  # dated, newest first
        "https://x.example/0", "https://x.example/2", "https://x.example/6",
    ]  # fmt: skip
    assert [e.link for e in newest_entries(entries, 1)] == ["https://x.example/4"]


def _serve_teasers(feed_server: FeedServer, pages: str, *, delay: float) -> None:
    """/feed.xml lists six teasers whose article pages ``pages``/0-5 answer after ``delay``."""
    for n in range(6):
        feed_server.serve(f"{pages}/{n}", ARTICLE_HTML, content_type="text/html", delay=delay)
    feed_server.serve("/feed.xml", rss([
        FeedItem(title=f"Story {n}", link=feed_server.url(f"{pages}/{n}"), guid=f"s{n}",
                 description="Teaser.")
        for n in range(6)
    ]))  # fmt: skip


async def test_a_hung_article_site_is_not_asked_again_and_does_not_hold_the_tick(
    tmp_path: Path, db_url: str, feed_server: FeedServer
) -> None:
    """Six teasers linking to a site that never answers: the first pages time out,
    the others are not requested (the items keep their feed text), and the poll is
    recorded as good."""
    _serve_teasers(feed_server, "/hung", delay=5)
    rules = load_rules(write_rules(tmp_path, [{"id": "f", "name": "F",
                                               "url": feed_server.url("/feed.xml")}]))  # fmt: skip
    limits = FetchLimits(max_concurrent=8, per_host=2)
    async with httpx.AsyncClient(timeout=0.5) as client:
        pipeline = Pipeline(
            open_store(db_url), Fetcher(client, max_bytes=1_000_000, limits=limits), rules,
            clock=lambda: NOW, allow_private=True, fulltext_min_chars=400,
            document_fetcher=Fetcher(client, max_bytes=1_000_000, limits=limits,
                                     unanswered_hold=300),
        )  # fmt: skip
        pipeline.sync_sources()
        [result] = await pipeline.tick(everything=True)

    outcome = result.value
    assert outcome is not None and not isinstance(outcome, Exception), outcome
    assert len(outcome.new_items) == 6
    asked = sum(len(feed_server.requests(f"/hung/{n}")) for n in range(6))
    assert asked == 2  # the two first in line (two per host); the other four not sent
    assert all(i.summary == "Teaser." and not i.body for i in pipeline.store.iter_items())


async def test_a_slow_article_site_costs_the_poll_its_budget_not_the_tick(
    tmp_path: Path, db_url: str, feed_server: FeedServer
) -> None:
    """Six teasers on a site that answers each page after 0.4 s, one at a time: with
    1 s for article pages, the first pages give their text, the rest keep their feed
    text, and the poll is stored as good (not held for all six)."""
    _serve_teasers(feed_server, "/slow", delay=0.4)
    source = {"id": "f", "name": "F", "url": feed_server.url("/feed.xml")}
    rules = load_rules(write_rules(tmp_path, [source]))
    async with httpx.AsyncClient(timeout=5) as client:
        fetcher = Fetcher(client, max_bytes=1_000_000, max_concurrent=4, per_host=1)
        pipeline = Pipeline(open_store(db_url), fetcher, rules, clock=lambda: NOW,
                            allow_private=True, fulltext_min_chars=400)  # fmt: skip
        pipeline.full_text.budget = 1.0
        pipeline.sync_sources()
        [result] = await pipeline.tick(everything=True)

    outcome = result.value
    assert outcome is not None and not isinstance(outcome, Exception), outcome
    assert len(outcome.new_items) == 6
    with_text = [i for i in pipeline.store.iter_items() if "visited since 2017" in i.body]
    assert 1 <= len(with_text) < 6
