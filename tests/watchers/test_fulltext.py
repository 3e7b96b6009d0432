"""Full text of teaser-only items, fetched from the local feed server; SSRF refusals."""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from metwatch.errors import FetchError
from metwatch.models import Item, RawEntry
from tests.support.feed_server import FeedServer
from watchers import fulltext
from watchers.addresses import check_public_url, ensure_public
from watchers.fetch import Fetcher, build_client
from watchers.fulltext import ArticleTexts, fetch_article, fetch_full_text
from watchers.pages import decode_html
from watchers.teasers import Teaser, needs_full_text

CAP = 1_000_000
#: Navigation, adverts, related links, comments and footer of ARTICLE_HTML.
NOISE = ("Subscribe for 99p", "What's On", "ADVERTISEMENT", "spa weekend", "Fox cub",
         "TrueBrit77", "commissioner goes", "Copyright", "cookies")  # fmt: skip

ARTICLE_HTML = """<!DOCTYPE html>
<html lang="en-GB">
<head>
  <meta charset="utf-8">
  <title>Met Police failing to manage sex offenders, inspectors find | Evening Courier</title>
  <meta property="og:title" content="Met Police failing to manage sex offenders, inspectors find">
  <script>window.dataLayer = [{"section": "crime"}];</script>
</head>
<body>
  <div class="cookie-banner">We use cookies to improve your experience. Accept all cookies</div>
  <header>
    <a class="logo" href="/">Evening Courier</a>
    <nav class="primary">
      <ul>
        <li><a href="/">Home</a></li><li><a href="/news">News</a></li>
        <li><a href="/sport">Sport</a></li><li><a href="/whats-on">What's On</a></li>
        <li><a href="/subscribe">Subscribe for 99p a month</a></li>
      </ul>
    </nav>
  </header>
  <div class="ad-slot" id="leaderboard">ADVERTISEMENT Win a luxury spa weekend for two</div>
  <main>
    <article>
      <h1>Met Police failing to manage sex offenders, inspectors find</h1>
      <p class="byline">By Jane Reporter, Crime Correspondent</p>
      <time datetime="2024-08-15T06:00:00+01:00">15 August 2024</time>
      <p>The Metropolitan Police has been graded inadequate at managing offenders
      after inspectors found that visits to registered sex offenders were routinely
      announced in advance, giving offenders time to hide evidence.</p>
      <p>His Majesty's Inspectorate of Constabulary and Fire &amp; Rescue Services
      said one high-risk offender had not been visited since 2017, and that the force
      took no further action in 60 per cent of cases involving indecent images of
      children.</p>
      <p>The report also found that complex investigations were being handed to
      newly recruited officers without enough supervision, and that victims were not
      always told about their rights under the Victims' Code.</p>
      <div class="inline-ad">ADVERTISEMENT Compare car insurance quotes today</div>
      <p>A Met spokesperson said the force accepted the findings and had already
      begun recruiting more staff to its offender management teams across London.</p>
    </article>
    <aside class="related">
      <h2>Most read</h2>
      <ul><li><a href="/news/fox-cub-rescued">Fox cub rescued from Tube station</a></li></ul>
    </aside>
    <section class="comments" id="comments">
      <h2>Comments (2)</h2>
      <div class="comment"><p>Absolutely shocking, sack the lot of them. - TrueBrit77</p></div>
      <div class="comment"><p>Nothing will change until the commissioner goes. - Londoner</p></div>
    </section>
  </main>
  <footer>
    <p>Copyright 2024 Evening Courier Media Ltd. All rights reserved.</p>
    <a href="/privacy">Privacy notice</a> <a href="/contact">Contact us</a>
  </footer>
</body>
</html>
"""


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with httpx.AsyncClient(timeout=2, follow_redirects=True, max_redirects=5) as client:
        yield Fetcher(client, max_bytes=CAP, max_concurrent=4, per_host=2)


def _teaser(link: str | None, summary: str = "Inspectors criticise the Met.") -> RawEntry:
    return RawEntry(guid="a1", link=link, title="Met criticised", summary=summary, content="",
                    published=None)  # fmt: skip


async def test_teaser_only_item_gets_the_articles_main_text(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/news/met-inspection", ARTICLE_HTML, content_type="text/html")
    entry = _teaser(feed_server.url("/news/met-inspection"))
    assert entry.link is not None and needs_full_text(entry)

    text = await fetch_full_text(fetcher, entry.link, allow_private=True, max_bytes=CAP)

    assert text is not None
    assert "visits to registered sex offenders were routinely announced in advance" in text
    assert "had not been visited since 2017" in text
    assert "offender management teams across London" in text
    for noise in NOISE:
        assert noise not in text, noise
    assert feed_server.hits("/news/met-inspection") == 1


async def test_a_bug_met_by_one_article_page_costs_its_text_not_the_poll(
    feed_server: FeedServer, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """No real page is known to raise an unexpected error (each found was fixed), so
    the extraction is made to raise one for one page, as a bug would."""
    feed_server.serve("/news/good", ARTICLE_HTML, content_type="text/html")
    extract = fulltext.fetch_full_text

    async def with_a_bug(fetcher: Fetcher, url: str, **kwargs: object) -> str | None:
        if url.endswith("/news/bug"):
            raise OverflowError("date value out of range")
        return await extract(fetcher, url, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fulltext, "fetch_full_text", with_a_bug)
    items = [Item(n, "s", "Outlet", feed_server.url(f"/news/{n}"), "Met criticised",
                  "Teaser.", "Teaser.", None, n) for n in ("bug", "good")]  # fmt: skip
    teasers = {i.id: Teaser(i.url or "", titled=True) for i in items}

    filled = await ArticleTexts(fetcher, allow_private=True).fill(items, teasers)

    assert filled[0] == items[0]  # kept its feed text
    assert "had not been visited since 2017" in filled[1].body
    assert "no full text for item bug: unexpected error" in caplog.text


async def test_fetch_article_also_reads_the_title(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/a", ARTICLE_HTML, content_type="text/html; charset=utf-8")

    entry = await fetch_article(fetcher, feed_server.url("/a"), allow_private=True, max_bytes=CAP)

    assert entry is not None and entry.link == feed_server.url("/a")
    assert entry.title.startswith("Met Police failing to manage sex offenders")
    assert "announced in advance" in entry.content


def test_needs_full_text_only_for_short_linked_items() -> None:
    assert needs_full_text(_teaser("https://news.example.com/a"))
    assert not needs_full_text(_teaser(None))
    assert not needs_full_text(_teaser("https://news.example.com/a", summary="word " * 100))
    # A teaser repeated at the start of the content counts once: still short.
    repeated = RawEntry(guid=None, link="https://news.example.com/a", title="t",
                        summary="<p>" + "x" * 250 + "</p>", content="x" * 250 + " more",
                        published=None)  # fmt: skip
    assert needs_full_text(repeated)
    assert not needs_full_text(repeated, min_chars=200)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"),
        ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF"),
        ("", b"<p>no content type at all</p>"),
    ],  # fmt: skip
)
async def test_not_html_gives_none(
    feed_server: FeedServer, fetcher: Fetcher, caplog: pytest.LogCaptureFixture,
    content_type: str, body: bytes,
) -> None:  # fmt: skip
    feed_server.serve("/report", body, content_type=content_type)
    caplog.set_level(logging.DEBUG, logger="watchers.fulltext")

    url = feed_server.url("/report")
    assert await fetch_full_text(fetcher, url, allow_private=True, max_bytes=CAP) is None
    assert await fetch_article(fetcher, url, allow_private=True, max_bytes=CAP) is None
    assert "is not HTML" in caplog.text


async def test_a_linked_pdf_is_turned_away_at_its_headers_not_downloaded(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    """An inspection report linked as the article: 50 MB of PDF, no Content-Length.
    Its body is not read (reading it would hit the 1 MB cap and fail)."""
    feed_server.serve_stream("/report.pdf", 50_000_000, content_type="application/pdf",
                             declare_length=False)  # fmt: skip

    url = feed_server.url("/report.pdf")
    assert await fetch_full_text(fetcher, url, allow_private=True, max_bytes=CAP) is None


@pytest.mark.parametrize("declare_length", [True, False])
async def test_a_50_mb_page_is_cut_off_by_the_size_cap(
    feed_server: FeedServer, fetcher: Fetcher, declare_length: bool
) -> None:
    feed_server.serve_stream("/huge", 50_000_000, content_type="text/html",
                             declare_length=declare_length)  # fmt: skip

    with pytest.raises(FetchError, match="response larger than 1 MB"):
        await asyncio.wait_for(
            fetch_full_text(fetcher, feed_server.url("/huge"), allow_private=True, max_bytes=CAP),
            5,
        )


async def test_max_bytes_can_hold_articles_below_the_fetchers_cap(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/long", ARTICLE_HTML, content_type="text/html")

    with pytest.raises(FetchError, match="article page larger than 0.001 MB"):
        await fetch_full_text(fetcher, feed_server.url("/long"), allow_private=True,
                              max_bytes=1000)  # fmt: skip


async def test_private_address_refused_unless_allowed(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/internal", ARTICLE_HTML, content_type="text/html")
    url = feed_server.url("/internal")

    with pytest.raises(FetchError, match=r"refused: 127\.0\.0\.1 is a loopback address"):
        await fetch_full_text(fetcher, url, allow_private=False, max_bytes=CAP)
    assert feed_server.hits("/internal") == 0  # refused before any request was sent

    text = await fetch_full_text(fetcher, url, allow_private=True, max_bytes=CAP)
    assert text is not None and "announced in advance" in text


async def test_windows_1252_page_without_charset_header(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    # No charset in the header or the page: the decoder has to work it out.
    page = ARTICLE_HTML.replace('<meta charset="utf-8">', "").replace(
        "<p>A Met spokesperson said",
        "<p>The caf\u00e9 owner, who was fined \u00a3300, said the \u201cnew\u201d rules were "
        "na\u00efve \u2013 and that nobody had told her.</p><p>A Met spokesperson said",
    )
    feed_server.serve("/cp1252", page.encode("cp1252"), content_type="text/html")

    text = await fetch_full_text(
        fetcher, feed_server.url("/cp1252"), allow_private=True, max_bytes=CAP
    )

    assert text is not None
    assert "The caf\u00e9 owner, who was fined \u00a3300" in text
    assert "\u201cnew\u201d rules were na\u00efve \u2013 and" in text


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            "<p>\u00a3 caf\u00e9 \u201cq\u201d</p>".encode("cp1252"),
            "text/html; charset=windows-1252",
            "\u00a3 caf\u00e9 \u201cq\u201d",
        ),
        # iso-8859-1 is read as windows-1252, as browsers do: 0x93/0x94 are curly quotes.
        (
            "<p>\u201cq\u201d \u00e9</p>".encode("cp1252"),
            "text/html; charset=ISO-8859-1",
            "\u201cq\u201d \u00e9",
        ),
        (
            '<meta charset="koi8-r"><p>\u041c\u0435\u0442</p>'.encode("koi8-r"),
            "text/html",
            "\u041c\u0435\u0442",
        ),
        (codecs.BOM_UTF8 + "<p>\u00a3</p>".encode(), "text/html; charset=cp1252", "<p>\u00a3</p>"),
        # An unknown label, or a codec that is not a text encoding, is ignored.
        ("<p>\u00e9</p>".encode(), "text/html; charset=x-no-such", "<p>\u00e9</p>"),
        ("<p>\u00e9</p>".encode(), "text/html; charset=hex", "<p>\u00e9</p>"),
        # Codecs that are no document charset: they refuse a body, even with "replace".
        ("<p>\u00e9</p>".encode(), "text/html; charset=idna", "<p>\u00e9</p>"),
        ("<p>\u00e9</p>".encode(), "text/html; charset=punycode", "<p>\u00e9</p>"),
        ("<p>\u00e9</p>".encode(), "text/html; charset=undefined", "<p>\u00e9</p>"),
        ('<meta charset="idna"><p>\u00e9</p>'.encode(), "text/html", "<p>\u00e9</p>"),
    ],
)
def test_decode_html_order_of_evidence(body: bytes, content_type: str, expected: str) -> None:
    assert expected in decode_html(body, content_type)


REFUSED = {
    "http://127.0.0.1/admin": "127.0.0.1 is a loopback address",
    "http://10.0.0.1/": "10.0.0.1 is a private address",
    "http://192.168.1.1/router": "192.168.1.1 is a private address",
    "http://[::1]/": "::1 is a loopback address",
    "http://169.254.169.254/latest/meta-data/": "169.254.169.254 is a link-local address",
    "http://0.0.0.0:8080/": "0.0.0.0 is an unspecified address",
    "http://224.0.0.1/": "224.0.0.1 is a multicast address",
    "http://[::ffff:10.0.0.1]/": "::ffff:10.0.0.1 is a private address",
    "http://100.64.0.1/": "100.64.0.1 is a non-public address",
    "http://localhost:8000/": "localhost resolves to",
    # inet_aton's decimal form of 127.0.0.1, a classic way round naive checks.
    "http://2130706433/": "2130706433 resolves to 127.0.0.1, a loopback address",
    "file:///etc/passwd": "only http and https URLs are fetched, not 'file'",
    "ftp://x": "only http and https URLs are fetched, not 'ftp'",
    "//example.com/a": "no scheme",
    "http:///path-only": "the URL has no host",
}


@pytest.mark.parametrize(("url", "reason"), REFUSED.items())
async def test_non_public_urls_are_refused_by_default(url: str, reason: str) -> None:
    with pytest.raises(FetchError, match="refused: ") as sync_error:
        check_public_url(url, allow_private=False)
    with pytest.raises(FetchError, match="refused: ") as async_error:
        await ensure_public(url, allow_private=False)
    assert reason in sync_error.value.message
    assert async_error.value.message == sync_error.value.message


async def test_private_addresses_allowed_explicitly_but_never_other_schemes() -> None:
    for url in ("http://127.0.0.1/x", "http://[::1]/", "http://localhost/", "http://10.0.0.1/"):
        check_public_url(url, allow_private=True)
        await ensure_public(url, allow_private=True)
    for url in ("file:///etc/passwd", "ftp://x", "gopher://127.0.0.1/"):
        with pytest.raises(FetchError, match="only http and https"):
            await ensure_public(url, allow_private=True)


async def test_public_addresses_pass() -> None:
    # IP literals: no lookup, so no network is needed.
    for url in ("https://93.184.215.14/news", "http://[2606:4700::1111]/"):
        check_public_url(url, allow_private=False)
        await ensure_public(url, allow_private=False)


async def test_public_only_client_refuses_internal_addresses_before_connecting(
    feed_server: FeedServer,
) -> None:
    feed_server.serve("/internal", "secret", content_type="text/plain")
    client = build_client(timeout=2, user_agent="metwatch-test", public_only=True)
    fetcher = Fetcher(client, max_bytes=1_000_000)
    try:
        with pytest.raises(FetchError, match="loopback"):
            await fetcher.fetch(feed_server.url("/internal"))
    finally:
        await client.aclose()
    assert feed_server.hits("/internal") == 0
