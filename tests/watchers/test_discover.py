"""Feed discovery: the feeds a page names, and the error that tells the user."""

from __future__ import annotations

import pytest

from metwatch.errors import ParseError
from watchers.discover import HINT_URL_MAX, MAX_FEEDS, discovery_hint, feeds_named_by
from watchers.parse import parse_feed

PAGE = "https://www.example.com/news/london/"


def _page(head: str, body: str = "<p>News</p>") -> bytes:
    page = f"<!DOCTYPE html><html><head><title>t</title>{head}</head><body>{body}</body></html>"
    return page.encode()


def test_names_rss_and_atom_feeds_in_page_order_made_absolute() -> None:
    html = _page(
        '<link rel="stylesheet" href="/s.css">'
        '<link rel="alternate" type="application/rss+xml" title="London  news" href="rss.xml">'
        '<link rel="alternate" type="application/atom+xml" href="/atom#top">'
        '<link rel="alternate" hreflang="cy" href="/cy/">'  # a translation, not a feed
        '<link rel="alternate" type="application/feed+json" href="/feed.json">'  # not read
        '<link rel="Alternate Home" type="Application/RSS+XML; charset=utf-8" href="/all.xml">'
        '<link rel="alternate" type="application/rss+xml" href="rss.xml">'  # a repeat
    )
    feeds = feeds_named_by(html, PAGE)
    assert [(f.url, f.title) for f in feeds] == [
        ("https://www.example.com/news/london/rss.xml", "London news"),
        ("https://www.example.com/atom", ""),
        ("https://www.example.com/all.xml", ""),
    ]


def test_base_href_and_non_http_links() -> None:
    html = _page(
        '<base href="https://cdn.example.net/feeds/">'
        '<link rel="alternate" type="application/rss+xml" href="met.xml">'
        '<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">'
        '<link rel="alternate" type="application/rss+xml" href="http://[broken">'
        '<link rel="alternate" type="application/rss+xml" href="  ">'
    )
    assert [f.url for f in feeds_named_by(html, PAGE)] == ["https://cdn.example.net/feeds/met.xml"]
    # A broken <base href> is ignored, never raised: the poll must fail cleanly.
    broken = _page('<base href="http://[broken/"><link rel="alternate" '
                   'type="application/rss+xml" href="/rss.xml">')  # fmt: skip
    assert [f.url for f in feeds_named_by(broken, PAGE)] == ["https://www.example.com/rss.xml"]
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(broken, PAGE, "text/html")


def test_a_page_naming_many_feeds_is_cut_short() -> None:
    links = "".join(
        f'<link rel="alternate" type="application/rss+xml" href="/c{n}.xml">' for n in range(40)
    )
    feeds = feeds_named_by(_page(links), PAGE)
    assert len(feeds) == MAX_FEEDS and feeds[0].url == "https://www.example.com/c0.xml"


def test_the_hint_leaves_out_addresses_too_long_to_show() -> None:
    long_href = "/feed.xml?" + "x" * HINT_URL_MAX
    html = _page(
        f'<link rel="alternate" type="application/rss+xml" href="{long_href}">'
        '<link rel="alternate" type="application/rss+xml" href="/rss.xml">'
    )
    assert len(feeds_named_by(html, PAGE)) == 2  # discovery itself keeps both
    assert discovery_hint(html, PAGE) == "the page names its feed: https://www.example.com/rss.xml"
    only_long = _page(f'<link rel="alternate" type="application/rss+xml" href="{long_href}">')
    assert discovery_hint(only_long, PAGE) == ""


@pytest.mark.parametrize(
    "body", [b"", b"\x00\x01\x02binary", b"plain text, no markup", _page(""), b"<rss><channel>"]
)
def test_nothing_named_gives_no_feeds_and_no_hint(body: bytes) -> None:
    assert feeds_named_by(body, PAGE) == []
    assert discovery_hint(body, PAGE) == ""


def test_feeds_in_the_body_are_not_taken_for_the_page_s_own() -> None:
    # A link to someone's feed in the page's text is not the page naming its own.
    html = _page("", '<a rel="alternate" type="application/rss+xml" href="/other.xml">feed</a>')
    assert feeds_named_by(html, PAGE) == []


def test_the_not_a_feed_error_names_the_page_s_feed() -> None:
    html = _page('<link rel="alternate" type="application/rss+xml" href="/news/rss.xml">')
    with pytest.raises(ParseError) as caught:
        parse_feed(html, PAGE, "text/html; charset=utf-8")
    assert caught.value.message == (
        "not a feed: got text/html; the page names its feed: https://www.example.com/news/rss.xml"
    )
    two = _page(
        '<link rel="alternate" type="application/rss+xml" href="/a.xml">'
        '<link rel="alternate" type="application/atom+xml" href="/b.xml">'
    )
    with pytest.raises(ParseError) as caught:
        parse_feed(two, PAGE, "text/html")
    assert caught.value.message.endswith(
        "names these feeds: https://www.example.com/a.xml, https://www.example.com/b.xml"
    )
    # Served with the wrong content type, the page still points to its feed.
    with pytest.raises(ParseError) as caught:
        parse_feed(html, PAGE, "application/octet-stream")
    assert caught.value.message.endswith("names its feed: https://www.example.com/news/rss.xml")
