"""The fast parser is used for a source only once proven to read it as feedparser does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

import watchers.fastparse
from metwatch.errors import ParseError
from metwatch.models import ParsedFeed
from tests.support.feeds import FeedItem, realistic_feed, rss
from watchers.fastparse import PROOF_POLLS, FeedParser
from watchers.parse import parse_feed, refresh_hint

DATA = Path(__file__).resolve().parent.parent / "data" / "feeds"
SY = 'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"'
# Dated: for an undated item fastfeedparser may read a date out of other text (guid "a"
# gave 2026-01-21), where feedparser has none, and the source would never prove.
ITEM = FeedItem(
    title="Met report",
    link="https://e.example/a",
    guid="a",
    description="<p>x</p>",
    published=datetime(2024, 5, 14, 9, 0, tzinfo=UTC),
)


def test_a_well_formed_source_earns_the_fast_path_with_identical_entries() -> None:
    parser = FeedParser()
    body = realistic_feed(50, seed=7).encode()
    for _ in range(PROOF_POLLS):
        assert parser.fast_sources() == []
        assert parser.parse("bbc", body, "http://x/") == parse_feed(body, "http://x/")
    assert parser.fast_sources() == ["bbc"]
    changed = realistic_feed(50, seed=8).encode()
    assert parser.parse("bbc", changed, "http://x/") == parse_feed(changed, "http://x/")


@pytest.mark.parametrize("name", ["broken.xml", "billion-laughs.xml"])
def test_malformed_xml_always_goes_to_feedparser(name: str) -> None:
    parser = FeedParser(proof_polls=0)  # even a "proven" source
    body = (DATA / name).read_bytes()
    assert parser.parse("s", body, "http://x/") == parse_feed(body, "http://x/")


def test_a_source_read_differently_stays_on_feedparser() -> None:
    parser = FeedParser()
    # content:encoded equal to the description: feedparser keeps it as content,
    # fastfeedparser cannot tell it from its own copy of the description.
    item = FeedItem(title="Met report", link="https://e.example/a", guid="a",
                    description="<p>Same text</p>", content="<p>Same text</p>")  # fmt: skip
    body = rss([item]).encode()
    assert parser.parse("s", body, "http://x/") == parse_feed(body, "http://x/")
    for _ in range(PROOF_POLLS + 1):
        parser.parse("s", realistic_feed(5, seed=1).encode(), "http://x/")
    assert parser.fast_sources() == []


def test_on_the_fast_path_errors_still_come_from_feedparser() -> None:
    parser = FeedParser(proof_polls=0)
    page = (DATA / "not-a-feed.html").read_bytes()
    with pytest.raises(ParseError, match="not a feed"):
        parser.parse("s", page, "http://x/", "text/html")
    with pytest.raises(ParseError, match="empty response"):
        parser.parse("s", b"", "http://x/")


def _rdf(channel_xml: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        f' xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" {SY}>\n'
        f'  <channel rdf:about="https://e.example/"><title>t</title>{channel_xml}</channel>\n'
        '  <item rdf:about="https://e.example/a"><title>Met report</title>'
        "<link>https://e.example/a</link><dc:date>2024-05-14T09:00:00Z</dc:date></item>\n"
        "</rdf:RDF>\n"
    )


def _atom(feed_xml: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<feed xmlns="http://www.w3.org/2005/Atom" {SY}><title>t</title><id>urn:f</id>'
        f"<updated>2024-01-01T00:00:00Z</updated>{feed_xml}\n"
        '  <entry><title>Met report</title><id>urn:a</id><link href="https://e.example/a"/>'
        "<updated>2024-01-01T00:00:00Z</updated></entry>\n"
        "</feed>\n"
    )


_HOURLY_TWICE = (
    "<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>"
)
# The rss() builder declares no sy prefix: each element declares its own.
_HOURLY_TWICE_RSS = (
    f"<sy:updatePeriod {SY}>hourly</sy:updatePeriod>"
    f"<sy:updateFrequency {SY}>2</sy:updateFrequency>"
)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(rss([ITEM], ttl=30), id="rss-ttl"),
        pytest.param(rss([ITEM], extra_channel_xml=_HOURLY_TWICE_RSS), id="rss-sy"),
        pytest.param(_rdf(_HOURLY_TWICE), id="rss1-rdf-sy"),
        pytest.param(_atom(_HOURLY_TWICE), id="atom-sy"),
    ],
)
def test_the_fast_path_keeps_the_feeds_refresh_hint(
    body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = body.encode()
    reference = parse_feed(content, "http://x/")
    assert reference.refresh_hint == 30 * 60
    parser = FeedParser()
    for _ in range(PROOF_POLLS):
        parser.parse("s", content, "http://x/")
    assert parser.fast_sources() == ["s"]

    def no_feedparser(*args: object) -> ParsedFeed:
        raise AssertionError("feedparser used on the fast path")

    monkeypatch.setattr(watchers.fastparse, "parse_feed", no_feedparser)
    assert parser.parse("s", content, "http://x/") == reference


def test_a_source_whose_refresh_hint_reads_differently_is_not_proven() -> None:
    # feedparser takes a <ttl> inside <image> as the feed's; the fast path reads
    # only the channel's own children. Entries agree, so only the hint can tell.
    plain = rss([ITEM]).encode()
    odd = rss([ITEM], extra_channel_xml="<image><url>https://e.example/i.png</url>"
              "<ttl>30</ttl></image>").encode()  # fmt: skip
    parser = FeedParser()
    for _ in range(PROOF_POLLS + 1):
        parser.parse("plain", plain, "http://x/")
        assert parser.parse("odd", odd, "http://x/") == parse_feed(odd, "http://x/")
    assert parser.fast_sources() == ["plain"]
    assert parse_feed(odd, "http://x/").refresh_hint == 30 * 60


@pytest.mark.parametrize(
    ("ttl", "period", "frequency", "seconds"),
    [
        ("30", "", "", 1800.0),
        (" 30\n", "", "", 1800.0),
        ("", "hourly", "2", 1800.0),
        ("", "Daily", "", 86400.0),
        ("", "hourly", "0", 3600.0),  # an infinite rate would be no rate: the default 1
        ("90", "hourly", "", 5400.0),  # the longer of the two
        ("soon", "sometimes", "2", None),
        ("", "", "", None),
        # Digits int() cannot read, and numbers too long for any interval: no hint,
        # where they used to raise out of parse_feed.
        ("²", "", "", None),
        ("9" * 400, "", "", None),
        ("9" * 5000, "", "", None),
    ],
)
def test_refresh_hint_arithmetic(
    ttl: str, period: str, frequency: str, seconds: float | None
) -> None:
    assert refresh_hint(ttl, period, frequency) == seconds


def test_an_unreadable_ttl_is_no_hint_rather_than_an_error() -> None:
    body = rss([ITEM]).replace("</channel>", f"<ttl>{'9' * 400}</ttl></channel>").encode()
    assert parse_feed(body, "http://x/").refresh_hint is None


def test_entry_links_and_ids_are_still_resolved_against_xml_base() -> None:
    # parse_feed turns off feedparser's rewriting of links inside HTML; entry links
    # and ids are resolved by a separate step, which must be unaffected.
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://news.example.com/uk/">
  <title>t</title><id>urn:f</id><updated>2024-01-01T00:00:00Z</updated>
  <entry xml:base="2024/">
    <title>a</title><id>urn:a</id><link href="story-1"/><updated>2024-01-01T00:00:00Z</updated>
    <summary type="html">&lt;p&gt;&lt;a href="more"&gt;More&lt;/a&gt;&lt;/p&gt;</summary>
  </entry>
  <entry>
    <title>b</title><id>b-2</id><link href="/world/story-2"/>
    <updated>2024-01-01T00:00:00Z</updated>
  </entry>
</feed>
"""
    entries = parse_feed(body, "https://news.example.com/uk/feed.atom").entries
    assert [(e.guid, e.link) for e in entries] == [
        ("urn:a", "https://news.example.com/uk/2024/story-1"),
        ("https://news.example.com/uk/b-2", "https://news.example.com/world/story-2"),
    ]
    resolving = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=True)
    assert [(e.id, e.link) for e in resolving.entries] == [(e.guid, e.link) for e in entries]
    # Only the HTML is left as the feed wrote it (metwatch keeps its text only).
    assert entries[0].summary == '<p><a href="more">More</a></p>'
