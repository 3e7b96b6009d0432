"""Sources without a feed: listing pages (CSS selector) and sitemaps."""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from metwatch.errors import ParseError
from tests.support.feed_server import FeedServer
from watchers.fetch import Fetcher
from watchers.pages import links_from_listing, selector_problem
from watchers.sitemaps import entries_from_sitemap, parse_sitemap

SELECTOR = "ul.press-releases li.press-release a"

LISTING_HTML = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>News | Metropolitan Police</title></head>
<body>
  <a class="skip" href="#main">Skip to main content</a>
  <header>
    <nav aria-label="Main">
      <ul class="menu">
        <li><a href="/">Home</a></li>
        <li><a href="/ro/report/">Report</a></li>
        <li><a href="/news/london/">News</a></li>
        <li><a href="/careers/">Careers</a></li>
        <li><a href="/contact/">Contact us</a></li>
      </ul>
    </nav>
    <form action="/search/"><input name="q"><button>Search</button></form>
  </header>
  <main id="main">
    <ol class="breadcrumbs"><li><a href="/">Home</a></li><li><a href="/news/">News</a></li></ol>
    <h1>Press releases</h1>
    <ul class="press-releases">
      <li class="press-release">
        <a class="thumb" href="/news/london/news/2024/august/response-to-hmicfrs-peel-report/">
          <img src="/img/nsy.jpg" alt=""></a>
        <h3><a href="/news/london/news/2024/august/response-to-hmicfrs-peel-report/">
          Met responds to HMICFRS   PEEL inspection report</a></h3>
        <time datetime="2024-08-15">15 August 2024</time>
        <p>The Met has responded to the inspectorate's report on police effectiveness.</p>
      </li>
      <li class="press-release">
        <h3><a href="2024/august/man-charged-hackney/">Man charged after Hackney
          stabbing</a></h3>
        <time datetime="2024-08-14">14 August 2024</time>
      </li>
      <li class="press-release">
        <h3><a href="https://news.met.police.uk/news/appeal-e1-2024" title="Appeal">
          Appeal for witnesses \u2013 \u00a3500 reward after Whitechapel robbery</a></h3>
      </li>
      <li class="press-release">
        <h3><a href="/news/london/news/2024/august/response-to-hmicfrs-peel-report/#comments">
          Read the comments</a></h3>
        <a href="mailto:press@met.police.uk">Email the press bureau</a>
        <a href="javascript:void(0)">Share</a>
      </li>
      <li class="press-release">
        <h3><a href="../../officer-dismissed/" title="Officer dismissed after hearing"></a></h3>
      </li>
    </ul>
    <nav class="pagination"><a href="?page=2">Next page</a></nav>
  </main>
  <aside><h2>Popular</h2><a href="/news/london/news/2023/old-story/">An old story</a></aside>
  <footer><a href="/privacy/">Privacy</a> <a href="/accessibility/">Accessibility</a></footer>
</body>
</html>
"""

NEWS_SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
  <url>
    <loc>https://www.example-news.co.uk/news/met-inspection-inadequate-123</loc>
    <lastmod>2024-08-15T09:00:00Z</lastmod>
    <news:news>
      <news:publication><news:name>Example News</news:name><news:language>en</news:language>
      </news:publication>
      <news:publication_date>2024-08-15T07:30:00+01:00</news:publication_date>
      <news:title>Met &amp; sex offenders:
        inspectors grade force \xe2\x80\x98inadequate\xe2\x80\x99</news:title>
    </news:news>
    <image:image>
      <image:loc>https://www.example-news.co.uk/img/nsy.jpg</image:loc>
      <image:title>New Scotland Yard (stock photo)</image:title>
    </image:image>
  </url>
  <!-- a repeated entry is kept once -->
  <url><loc>https://www.example-news.co.uk/news/met-inspection-inadequate-123</loc></url>
  <url>
    <loc>https://www.example-news.co.uk/news/offender-not-visited-since-2017-456</loc>
    <news:news>
      <news:publication_date>2024-08-16</news:publication_date>
      <news:title>
        Offender not visited since 2017
      </news:title>
    </news:news>
  </url>
  <url>
    <loc>https://www.example-news.co.uk/news/no-publication-date-789</loc>
    <lastmod>2024-08-16T10:15:00.123+00:00</lastmod>
    <news:news><news:title>Dated by lastmod</news:title></news:news>
  </url>
</urlset>
"""

PLAIN_SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://www.example.org/news/a</loc><lastmod>2024-08-15</lastmod></url>
  <url><loc>https://www.example.org/news/b</loc><lastmod>not a date</lastmod></url>
  <url><loc>https://www.example.org/news/c</loc><lastmod>0001-01-01T00:00+01:00</lastmod></url>
  <url><loc>ftp://www.example.org/file</loc></url>
  <url><loc></loc></url>
</urlset>
"""

SITEMAP_INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>https://www.example.org/sitemap-2024-06.xml</loc>
           <lastmod>2024-06-30T23:00:00Z</lastmod></sitemap>
  <sitemap><loc>https://www.example.org/sitemap-static.xml</loc></sitemap>
  <sitemap><loc>https://www.example.org/sitemap-news.xml</loc>
           <lastmod>2024-08-15T09:00:00+01:00</lastmod></sitemap>
  <sitemap><loc>https://www.example.org/sitemap-2024-07.xml</loc>
           <lastmod>2024-07-31</lastmod></sitemap>
</sitemapindex>
"""

_LAUGHS = "".join(
    f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
)  # each level ten times the one before: &lol9; is 10^9 "lol"s
BILLION_LAUGHS = f"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY lol0 "lol">{_LAUGHS}]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
  <url><loc>https://attacker.example.com/a</loc>
       <news:news><news:title>&lol9;</news:title></news:news></url>
</urlset>""".encode()

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
  <url><loc>https://attacker.example.com/a</loc>
       <news:news><news:title>Leak &xxe;</news:title></news:news></url>
</urlset>"""


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with httpx.AsyncClient(timeout=2, follow_redirects=True, max_redirects=5) as client:
        yield Fetcher(client, max_bytes=1_000_000)


# -- listing pages ---------------------------------------------------------------------


async def test_selector_picks_article_links_from_a_listing_page(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.redirect("/news", "/news/london/")
    feed_server.serve("/news/london/", LISTING_HTML, content_type="text/html; charset=utf-8")

    page = await fetcher.fetch(feed_server.url("/news"))
    entries = links_from_listing(page.content, page.final_url, SELECTOR, page.content_type)

    base = feed_server.url("/news/london/")
    assert [(e.title, e.link) for e in entries] == [
        ("Met responds to HMICFRS PEEL inspection report",  # image link first, title later
         base + "news/2024/august/response-to-hmicfrs-peel-report/"),
        ("Man charged after Hackney stabbing", base + "2024/august/man-charged-hackney/"),
        ("Appeal for witnesses \u2013 \u00a3500 reward after Whitechapel robbery",
         "https://news.met.police.uk/news/appeal-e1-2024"),
        ("Officer dismissed after hearing", feed_server.url("/officer-dismissed/")),
    ]  # fmt: skip
    assert all(e.guid is None and e.published is None for e in entries)
    assert all(e.summary == "" and e.content == "" for e in entries)


def test_base_href_and_containers_of_links() -> None:
    html = b"""<html><head><base href="https://www.example.org/press/"></head><body>
      <div class="item"><h2>Headline <a href="2024/one">One</a></h2></div>
      <div class="item"><p>No link here</p></div>
      <div class="item"><a href="/two">Two</a></div></body></html>"""

    entries = links_from_listing(html, "https://cdn.example.net/list", "div.item")

    assert [(e.title, e.link) for e in entries] == [
        ("One", "https://www.example.org/press/2024/one"),
        ("Two", "https://www.example.org/two"),
    ]


@pytest.mark.parametrize("selector", ["a[", "li:nth-child(", "a:unknown-pseudo", ""])
def test_invalid_selector_is_named(selector: str) -> None:
    with pytest.raises(ParseError, match=re.escape(f"invalid CSS selector '{selector}': ")):
        links_from_listing(LISTING_HTML.encode(), "https://www.met.police.uk/news/", selector)
    assert (selector_problem(selector) or "").startswith(f"invalid CSS selector '{selector}': ")


def test_valid_selector_has_no_problem() -> None:
    assert selector_problem(SELECTOR) is None


def test_no_link_matched_says_the_page_may_have_changed() -> None:
    with pytest.raises(ParseError) as error:
        links_from_listing(LISTING_HTML.encode(), "https://www.met.police.uk/", "div.gone a")
    assert error.value.message == (
        "no links matched selector 'div.gone a' (has the page changed?)"
    )
    # Only mailto: and javascript: links match: still nothing to fetch.
    with pytest.raises(ParseError, match="no links matched"):
        links_from_listing(LISTING_HTML.encode(), "https://www.met.police.uk/",
                           "a[href^=mailto], a[href^=javascript]")  # fmt: skip


def test_empty_body_is_not_a_page() -> None:
    with pytest.raises(ParseError, match="empty response"):
        links_from_listing(b"  \n", "https://www.met.police.uk/", "a")


# -- sitemaps --------------------------------------------------------------------------


async def test_news_sitemap_fetched_and_parsed(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/sitemap-news.xml", NEWS_SITEMAP, content_type="application/xml",
                      gzip=True)  # fmt: skip

    fetched = await fetcher.fetch(feed_server.url("/sitemap-news.xml"))
    entries = entries_from_sitemap(fetched.content, fetched.final_url)

    assert [(e.title, e.link, e.published) for e in entries] == [
        ("Met & sex offenders: inspectors grade force \u2018inadequate\u2019",
         "https://www.example-news.co.uk/news/met-inspection-inadequate-123",
         datetime(2024, 8, 15, 6, 30, tzinfo=UTC)),  # 07:30+01:00, not the lastmod
        ("Offender not visited since 2017",
         "https://www.example-news.co.uk/news/offender-not-visited-since-2017-456",
         datetime(2024, 8, 16, tzinfo=UTC)),
        ("Dated by lastmod", "https://www.example-news.co.uk/news/no-publication-date-789",
         datetime(2024, 8, 16, 10, 15, 0, 123000, tzinfo=UTC)),
    ]  # fmt: skip
    assert all(e.published is not None and e.published.tzinfo is UTC for e in entries)


def test_plain_urlset_has_links_and_lastmod_only() -> None:
    entries = entries_from_sitemap(PLAIN_SITEMAP, "https://www.example.org/sitemap.xml")

    assert [(e.title, e.link, e.published) for e in entries] == [
        ("", "https://www.example.org/news/a", datetime(2024, 8, 15, tzinfo=UTC)),
        ("", "https://www.example.org/news/b", None),  # an unreadable date is no date
        ("", "https://www.example.org/news/c", None),  # before year 1 in UTC: no such date
    ]


def test_sitemap_index_lists_children_newest_first() -> None:
    sitemap = parse_sitemap(SITEMAP_INDEX, "https://www.example.org/sitemap.xml")

    assert sitemap.entries == ()
    assert sitemap.children == (
        "https://www.example.org/sitemap-news.xml",
        "https://www.example.org/sitemap-2024-07.xml",
        "https://www.example.org/sitemap-2024-06.xml",
        "https://www.example.org/sitemap-static.xml",
    )
    assert entries_from_sitemap(SITEMAP_INDEX, "https://www.example.org/sitemap.xml") == []


def test_billion_laughs_is_refused_without_expanding() -> None:
    started = time.perf_counter()
    with pytest.raises(ParseError, match="malformed sitemap XML: .*entity"):
        entries_from_sitemap(BILLION_LAUGHS, "https://attacker.example.com/sitemap.xml")
    assert time.perf_counter() - started < 1


def test_external_entities_are_not_read() -> None:
    entries = entries_from_sitemap(XXE, "https://attacker.example.com/sitemap.xml")

    assert len(entries) == 1 and "root:" not in entries[0].title


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty response"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "root element is <html>"),
        (b"<html><body><p>Not found<br></body></html>", "malformed sitemap XML"),
        (b'<rss version="2.0"><channel/></rss>', "not a sitemap: the root element is <rss>"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt gzip sitemap: the compressed data is truncated"),
        (gzip.compress(b"<urlset/>")[:-12], "corrupt gzip sitemap"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"\xff\xff\xff", "corrupt gzip sitemap: "),
    ],
)
def test_unreadable_sitemaps_raise_parse_error(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        entries_from_sitemap(body, "https://www.example.org/sitemap.xml")


def test_gzipped_sitemap_is_inflated_within_a_limit() -> None:
    url = "https://www.example.org/sitemap.xml.gz"
    assert len(entries_from_sitemap(gzip.compress(NEWS_SITEMAP), url)) == 3

    bomb = gzip.compress(b" " * 5_000_000)  # about 5 KB on the wire
    with pytest.raises(ParseError, match="larger than 1 MB once decompressed"):
        parse_sitemap(bomb, url, max_bytes=1_000_000)


def test_a_malformed_sitemap_keeps_what_can_be_read() -> None:
    """A bare "&" in a news:title, an unclosed <url>: the entries are read all the same."""
    body = b"""<?xml version="1.0"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>https://example.com/a</loc><news:news><news:title>Met graded inadequate</news:title>
</news:news></url>
<url><loc>https://example.com/b</loc><news:news><news:title>Crime & punishment</news:title>
</news:news></url>
<url><loc>https://example.com/c</loc>
</urlset>"""

    entries = entries_from_sitemap(body, "https://example.com/sitemap.xml")

    assert [e.link for e in entries] == [f"https://example.com/{n}" for n in "abc"]
    assert entries[0].title == "Met graded inadequate"


def test_a_sitemap_with_an_undeclared_prefix_is_read() -> None:
    body = (b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url>'
            b"<loc>https://a.example/1</loc><image:image><image:loc>x</image:loc>"
            b"</image:image></url></urlset>")  # fmt: skip

    entries = entries_from_sitemap(body, "https://a.example/s.xml")

    assert [e.link for e in entries] == ["https://a.example/1"]
