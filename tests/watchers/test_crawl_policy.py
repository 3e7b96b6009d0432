"""The crawl policy for article pages against the local feed server: robots.txt
(RFC 9309 cases), Crawl-delay, and the waits sites ask for with 429 and 503."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from classifiers.rules import load_rules
from metwatch.app import Service
from metwatch.errors import FetchError
from metwatch.pipeline import Pipeline
from metwatch.settings import load_settings
from metwatch.store import open_store
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, rss
from tests.watchers.test_fulltext import ARTICLE_HTML
from watchers.crawl_policy import MAX_CRAWL_WAIT, ROBOTS_TTL, UNREACHABLE_TTL, CrawlPolicy
from watchers.fetch import Fetcher
from watchers.fulltext import fetch_full_text

UA = "metwatch/1.4.0 (+https://github.com/metwatch/metwatch)"
CAP = 1_000_000
NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)


class Clock:
    """A monotonic clock the test moves by hand (cache expiry)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with httpx.AsyncClient(timeout=2, follow_redirects=True, max_redirects=5) as client:
        yield Fetcher(client, max_bytes=CAP, max_concurrent=8, per_host=8)


def _teaser_feed(server: FeedServer, folder: Path) -> Path:
    """A feed whose one item is a teaser of /articles/teaser; its rules file."""
    server.serve("/articles/teaser", ARTICLE_HTML, content_type="text/html")
    teaser = FeedItem(title="Met criticised", guid="t", link=server.url("/articles/teaser"),
                      description="Inspectors criticise the Met.")  # fmt: skip
    server.serve("/feed.xml", rss([teaser]))
    source = {"id": "feed", "name": "Feed", "interval": 300, "url": server.url("/feed.xml")}
    return write_rules(folder, [source])


async def _full_text(fetcher: Fetcher, robots: CrawlPolicy, url: str) -> str | None:
    return await fetch_full_text(fetcher, url, allow_private=True, max_bytes=CAP, policy=robots)


async def _check(
    robots: CrawlPolicy, server: FeedServer, *, allowed: list[str], refused: list[str]
) -> None:
    for path in allowed:
        await robots.ensure_allowed(server.url(path))
    for path in refused:
        with pytest.raises(FetchError, match="disallows this page for metwatch"):
            await robots.ensure_allowed(server.url(path))


def _robots(server: FeedServer, text: str, **kwargs: object) -> None:
    server.serve("/robots.txt", text, content_type="text/plain", **kwargs)  # type: ignore[arg-type]


async def test_disallowed_page_is_refused_and_never_fetched(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    _robots(feed_server, "User-agent: *\nDisallow: /articles/\n")
    feed_server.serve("/articles/met", ARTICLE_HTML, content_type="text/html")
    feed_server.serve("/news/met", ARTICLE_HTML, content_type="text/html")
    robots = CrawlPolicy(fetcher, UA)

    with pytest.raises(FetchError, match=r"robots\.txt of http://127\.0\.0\.1:\d+ disallows "
                                         r"this page for metwatch"):  # fmt: skip
        await _full_text(fetcher, robots, feed_server.url("/articles/met"))
    text = await _full_text(fetcher, robots, feed_server.url("/news/met"))

    assert text is not None and "announced in advance" in text
    assert feed_server.hits("/articles/met") == 0
    assert feed_server.hits("/robots.txt") == 1  # read once for both pages


async def test_metwatchs_own_group_wins_over_the_wildcard(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    groups = "User-agent: *\nDisallow: /\n\n"
    groups += "User-agent: metwatch\nAllow: /news/\nDisallow: /news/private$\n"
    _robots(feed_server, groups)
    robots = CrawlPolicy(fetcher, UA)

    await robots.ensure_allowed(feed_server.url("/news/met-report"))
    await robots.ensure_allowed(feed_server.url("/news/private/x"))  # `$` ends the pattern
    with pytest.raises(FetchError, match="disallows"):
        await robots.ensure_allowed(feed_server.url("/news/private"))
    # Only metwatch's group applies to metwatch: the wildcard's "Disallow: /" does not.
    await robots.ensure_allowed(feed_server.url("/sport/"))
    other = CrawlPolicy(fetcher, "SomeOtherBot/2.0")
    with pytest.raises(FetchError, match="disallows"):
        await other.ensure_allowed(feed_server.url("/news/met-report"))


async def test_no_robots_txt_allows_everything_and_is_read_once(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    robots = CrawlPolicy(fetcher, UA)  # the server answers 404 for /robots.txt

    await asyncio.gather(*(robots.ensure_allowed(feed_server.url(f"/a/{i}")) for i in range(6)))

    assert feed_server.hits("/robots.txt") == 1


@pytest.mark.parametrize("status", [503, 429])
async def test_unreachable_robots_txt_keeps_pages_unfetched_for_an_hour(
    feed_server: FeedServer, fetcher: Fetcher, status: int
) -> None:
    _robots(feed_server, "", status=status)
    clock = Clock()
    robots = CrawlPolicy(fetcher, UA, clock=clock)
    page = feed_server.url("/news/met")

    with pytest.raises(
        FetchError, match=rf"robots\.txt of .* could not be read \(HTTP {status}\)"
    ):
        await robots.ensure_allowed(page)
    clock.now += UNREACHABLE_TTL - 1
    with pytest.raises(FetchError, match="could not be read"):
        await robots.ensure_allowed(page)
    assert feed_server.hits("/robots.txt") == 1  # not asked again within the hour

    _robots(feed_server, "User-agent: *\nAllow: /\n")
    clock.now += 2
    await robots.ensure_allowed(page)
    assert feed_server.hits("/robots.txt") == 2


async def test_robots_txt_that_times_out_counts_as_unreachable(feed_server: FeedServer) -> None:
    _robots(feed_server, "User-agent: *\nAllow: /\n", delay=2.0)
    async with httpx.AsyncClient(timeout=0.3) as client:
        robots = CrawlPolicy(Fetcher(client, max_bytes=CAP), UA)
        with pytest.raises(FetchError, match=r"could not be read \(timed out after 0\.3 s\)"):
            await robots.ensure_allowed(feed_server.url("/news/met"))


async def test_robots_txt_is_trusted_for_a_day_then_read_again(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    _robots(feed_server, "User-agent: *\nAllow: /\n")
    clock = Clock()
    robots = CrawlPolicy(fetcher, UA, clock=clock)
    page = feed_server.url("/news/met")
    await robots.ensure_allowed(page)

    _robots(feed_server, "User-agent: *\nDisallow: /news/\n")
    clock.now += ROBOTS_TTL - 1
    await robots.ensure_allowed(page)  # the day-old answer still holds
    clock.now += 2
    with pytest.raises(FetchError, match="disallows"):
        await robots.ensure_allowed(page)
    assert feed_server.hits("/robots.txt") == 2


async def test_redirected_robots_txt_is_followed(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.redirect("/robots.txt", "/static/robots.txt")
    feed_server.serve("/static/robots.txt", "User-agent: *\nDisallow: /private/\n",
                      content_type="text/plain")  # fmt: skip

    await _check(CrawlPolicy(fetcher, UA), feed_server, allowed=["/news/met"],
                 refused=["/private/met"])  # fmt: skip


async def test_crawl_delay_spaces_pages_and_refuses_a_turn_too_far_off(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    _robots(feed_server, "User-agent: *\nCrawl-delay: 1\n")
    robots = CrawlPolicy(fetcher, UA, max_crawl_wait=1.5)
    loop = asyncio.get_running_loop()

    async def allowed_at(path: str) -> float:
        await robots.ensure_allowed(feed_server.url(path))
        return loop.time()

    start = loop.time()
    results = await asyncio.gather(
        *(allowed_at(f"/news/{i}") for i in range(3)), return_exceptions=True
    )

    times = sorted(r - start for r in results if isinstance(r, float))
    refused = [r for r in results if isinstance(r, FetchError)]
    # Turns at 0, 1 and 2 s: the third is more than 1.5 s off, so it is refused.
    assert len(times) == 2 and len(refused) == 1
    assert times[1] - times[0] >= 0.95
    assert "asks for 1 s between requests: not fetched now" in str(refused[0])


async def test_answers_kept_for_a_bounded_number_of_sites(fetcher: Fetcher) -> None:
    with FeedServer() as a, FeedServer() as b:
        robots = CrawlPolicy(fetcher, UA, max_origins=2)
        sites = [a.url("/x"), b.url("/x"), a.url("/x").replace("127.0.0.1", "localhost")]
        for url in sites:
            await robots.ensure_allowed(url)
        await robots.ensure_allowed(sites[0])  # forgotten by now: read again

        assert a.hits("/robots.txt") == 3  # 127.0.0.1 twice, localhost once
        assert b.hits("/robots.txt") == 1


async def test_pipeline_keeps_the_feed_text_of_an_item_whose_page_robots_refuse(
    tmp_path: Path, db_url: str, feed_server: FeedServer, fetcher: Fetcher,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    _robots(feed_server, "User-agent: metwatch\nDisallow: /articles/\n")
    rules = load_rules(_teaser_feed(feed_server, tmp_path))
    pipeline = Pipeline(open_store(db_url), fetcher, rules, clock=lambda: NOW,
                        allow_private=True, fulltext_min_chars=400,
                        crawl_policy=CrawlPolicy(fetcher, UA))  # fmt: skip
    pipeline.sync_sources()
    caplog.set_level(logging.WARNING, logger="metwatch.pipeline")

    [result] = await pipeline.tick(everything=True)

    assert not isinstance(result.value, Exception) and result.value is not None
    [stored] = list(pipeline.store.iter_items())
    assert stored.summary == "Inspectors criticise the Met."  # the feed's text, kept
    assert "announced in advance" not in stored.body
    assert feed_server.hits("/articles/teaser") == 0
    assert "no full text for item" in caplog.text and "disallows this page" in caplog.text


@pytest.mark.parametrize(("obey", "article_hits"), [(None, 0), (False, 1)])
async def test_service_obeys_robots_txt_unless_turned_off(
    tmp_path: Path, db_url: str, feed_server: FeedServer, obey: bool | None, article_hits: int
) -> None:
    _robots(feed_server, "User-agent: *\nDisallow: /articles/\n")
    rules_path = _teaser_feed(feed_server, tmp_path)
    overrides = {} if obey is None else {"obey_robots_txt": obey}  # None: the default
    settings = load_settings(database_url=db_url, rules_path=rules_path, worker_processes=0,
                             allow_private_addresses=True, fulltext_min_chars=400,
                             **overrides)  # fmt: skip
    service = Service(settings)
    try:
        await service.pipeline.tick(everything=True)
    finally:
        await service.close()

    assert feed_server.hits("/articles/teaser") == article_hits
    assert feed_server.hits("/robots.txt") == 1 - article_hits


async def test_each_redirect_hop_is_checked_against_its_own_sites_robots_txt(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    with FeedServer() as publisher:
        _robots(publisher, "User-agent: *\nDisallow: /paywalled/\n")
        publisher.serve("/paywalled/met", ARTICLE_HTML, content_type="text/html")
        publisher.serve("/news/met", ARTICLE_HTML, content_type="text/html")
        # A tracker on another site sends readers on to the publisher.
        feed_server.redirect("/click/1", publisher.url("/paywalled/met"), status=302)
        feed_server.redirect("/click/2", publisher.url("/news/met"), status=302)
        robots = CrawlPolicy(fetcher, UA)

        with pytest.raises(FetchError, match=rf"robots\.txt of {publisher.base_url} disallows"):
            await _full_text(fetcher, robots, feed_server.url("/click/1"))
        text = await _full_text(fetcher, robots, feed_server.url("/click/2"))

        assert text is not None and "announced in advance" in text
        assert publisher.hits("/paywalled/met") == 0
        assert publisher.hits("/robots.txt") == 1 and feed_server.hits("/robots.txt") == 1


async def test_a_redirect_loop_between_article_pages_is_cut(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.redirect("/a", "/b")
    feed_server.redirect("/b", "/a")

    with pytest.raises(FetchError, match=r"too many redirects \(a redirect loop\?\)"):
        await fetch_full_text(fetcher, feed_server.url("/a"), allow_private=True, max_bytes=CAP,
                              policy=CrawlPolicy(fetcher, UA))  # fmt: skip
    assert feed_server.hits("/a") + feed_server.hits("/b") == 6  # the link and 5 redirects


async def test_a_byte_order_mark_does_not_hide_the_first_group(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    _robots(feed_server, "\ufeffUser-agent: *\nDisallow: /\n")

    with pytest.raises(FetchError, match="disallows"):
        await CrawlPolicy(fetcher, UA).ensure_allowed(feed_server.url("/news/met"))


async def test_groups_match_the_product_token_not_words_in_the_comment(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    # The default User-Agent names github.com in its comment: that group is not ours.
    _robots(
        feed_server, "User-agent: github\nDisallow: /\n\nUser-agent: metwatch\nDisallow: /x/\n"
    )

    await _check(CrawlPolicy(fetcher, UA), feed_server, allowed=["/news/met"], refused=["/x/met"])


async def test_a_re_read_keeps_the_crawl_delay_spacing(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    _robots(feed_server, "User-agent: *\nCrawl-delay: 1\n")
    clock = Clock()
    robots = CrawlPolicy(fetcher, UA, clock=clock)
    loop = asyncio.get_running_loop()
    await robots.ensure_allowed(feed_server.url("/news/1"))
    first = loop.time()

    clock.now += ROBOTS_TTL + 1  # the day is over: robots.txt is read again
    await robots.ensure_allowed(feed_server.url("/news/2"))

    assert feed_server.hits("/robots.txt") == 2
    assert loop.time() - first >= 0.95


async def test_credentials_in_a_link_are_not_sent_for_robots_txt(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    link = feed_server.url("/news/met").replace("http://", "http://reader:s3cret@")

    await CrawlPolicy(fetcher, UA).ensure_allowed(link)

    [request] = feed_server.requests("/robots.txt")
    assert "authorization" not in request.headers


async def test_a_known_sites_last_rules_stand_while_its_robots_txt_is_unreachable(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    _robots(feed_server, "User-agent: *\nDisallow: /x/\n")
    clock = Clock()
    robots = CrawlPolicy(fetcher, UA, clock=clock)
    await _check(robots, feed_server, allowed=["/news/1"], refused=["/x/1"])

    _robots(feed_server, "", status=503)
    clock.now += ROBOTS_TTL + 1
    await _check(robots, feed_server, allowed=["/news/2"], refused=["/x/2"])  # the last rules

    _robots(feed_server, "User-agent: *\nDisallow: /news/\n")
    clock.now += UNREACHABLE_TTL + 1  # looked at again an hour later
    await _check(robots, feed_server, allowed=["/x/3"], refused=["/news/3"])
    assert feed_server.hits("/robots.txt") == 3


@pytest.mark.parametrize(
    ("status", "retry_after", "held_for"), [(429, "120", 120), (429, "1", 1), (503, None, 60)]
)
async def test_a_429_or_503_on_an_article_page_holds_the_sites_next_pages(
    feed_server: FeedServer, fetcher: Fetcher, status: int, retry_after: str | None,
    held_for: int,
) -> None:  # fmt: skip
    headers = {"Retry-After": retry_after} if retry_after else {}
    feed_server.serve("/busy", "slow down", status=status, headers=headers,
                      content_type="text/plain")  # fmt: skip
    feed_server.serve("/next", ARTICLE_HTML, content_type="text/html")
    robots = CrawlPolicy(fetcher, UA)
    loop = asyncio.get_running_loop()

    with pytest.raises(FetchError, match=rf"HTTP {status}"):
        await _full_text(fetcher, robots, feed_server.url("/busy"))
    asked = loop.time()
    if held_for <= MAX_CRAWL_WAIT:  # within the wait a page may have for its turn
        assert await _full_text(fetcher, robots, feed_server.url("/next"))
        assert loop.time() - asked >= held_for - 0.05
        assert feed_server.hits("/next") == 1
    else:
        with pytest.raises(FetchError, match=rf"127\.0\.0\.1:\d+ asked to retry after "
                                             rf"{held_for} s: not fetched now"):  # fmt: skip
            await _full_text(fetcher, robots, feed_server.url("/next"))
        assert loop.time() - asked < 5  # refused at once, not after a wait
        assert feed_server.hits("/next") == 0
