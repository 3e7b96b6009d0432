"""The fast parser reads a body only where it is proven to read it as feedparser does:
inside the proven subset from the first poll, else once the source is proven."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

import watchers.fastparse
from metwatch.errors import ParseError
from metwatch.models import ParsedFeed
from tests.support.feeds import FeedItem, realistic_feed, rss
from watchers.fastparse import PROOF_POLLS, FeedParser, read_unproven
from watchers.parse import parse_feed, refresh_hint

DATA = Path(__file__).resolve().parent.parent / "data" / "feeds"
SY = 'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"'
# Dated: for an undated item fastfeedparser may read a date out of other text (guid "a"
# gave 2026-01-21), where feedparser has none, and the source would never prove.
# An element of an unknown vocabulary in the channel: both parsers ignore it, but it
# puts a document outside the proven subset, so its source needs the run-time proof.
OUTSIDE_SUBSET = '<extra:note xmlns:extra="urn:example:extra">read by neither</extra:note>'
ITEM = FeedItem(
    title="Met report",
    link="https://e.example/a",
    guid="a",
    description="<p>x</p>",
    published=datetime(2024, 5, 14, 9, 0, tzinfo=UTC),
)


def _outside_subset(feed: str) -> bytes:
    return feed.replace("<channel>", f"<channel>{OUTSIDE_SUBSET}", 1).encode()


def _without_feedparser(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_feedparser(*args: object) -> ParsedFeed:
        raise AssertionError("feedparser used on the fast path")

    monkeypatch.setattr(watchers.fastparse, "parse_feed", no_feedparser)


def test_a_well_formed_source_earns_the_fast_path_with_identical_entries() -> None:
    parser = FeedParser()
    body = _outside_subset(realistic_feed(50, seed=7))
    for _ in range(PROOF_POLLS):
        assert parser.fast_sources() == []
        assert parser.parse("bbc", body, "http://x/") == parse_feed(body, "http://x/")
    assert parser.fast_sources() == ["bbc"]
    changed = _outside_subset(realistic_feed(50, seed=8))
    assert parser.parse("bbc", changed, "http://x/") == parse_feed(changed, "http://x/")


def test_a_body_inside_the_subset_takes_the_fast_path_from_the_first_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = realistic_feed(50, seed=7).encode()
    reference = parse_feed(body, "http://x/")
    _without_feedparser(monkeypatch)
    parser = FeedParser()
    assert parser.fast_sources() == []
    assert parser.parse("bbc", body, "http://x/", "application/rss+xml") == reference
    assert parser.fast_sources() == ["bbc"]


def test_bodies_inside_the_subset_prove_nothing_about_bodies_outside_it() -> None:
    # Outside the subset, and read differently by the fast parser (content:encoded
    # equal to the description): it must reach feedparser however many plain
    # bodies came before.
    item = FeedItem(title="Met report", link="https://e.example/a", guid="a",
                    description="<p>Same text</p>", content="<p>Same text</p>")  # fmt: skip
    differing = rss([item]).encode()
    parser = FeedParser()
    for seed in range(PROOF_POLLS + 1):
        parser.parse("s", realistic_feed(5, seed=seed).encode(), "http://x/")
    assert parser.fast_sources() == ["s"]
    assert parser.parse("s", differing, "http://x/") == parse_feed(differing, "http://x/")
    assert parser.fast_sources() == []


def test_a_body_outside_the_subset_of_an_unproven_source_is_read_by_feedparser_and_proven(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outside = _outside_subset(realistic_feed(5, seed=2))
    parser = FeedParser()
    for _ in range(PROOF_POLLS):
        assert parser.fast_sources() == []
        assert parser.parse("s", outside, "http://x/") == parse_feed(outside, "http://x/")
    assert parser.fast_sources() == ["s"]
    reference = parse_feed(outside, "http://x/")
    _without_feedparser(monkeypatch)
    assert parser.parse("s", outside, "http://x/") == reference


def test_a_source_read_differently_once_stays_on_feedparser_even_inside_the_subset() -> None:
    # Disproven means a body of this source was read differently: the source's
    # bodies all go to feedparser from then on, however plain.
    item = FeedItem(title="Met report", link="https://e.example/a", guid="a",
                    description="<p>Same text</p>", content="<p>Same text</p>")  # fmt: skip
    differing = rss([item]).encode()
    parser = FeedParser()
    parser.parse("s", differing, "http://x/")
    inside = realistic_feed(5, seed=1).encode()
    assert read_unproven(inside, "http://x/")[1] == "subset"
    assert parser.parse("s", inside, "http://x/") == parse_feed(inside, "http://x/")
    assert parser.fast_sources() == []


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
    ("body", "in_subset"),
    [
        pytest.param(rss([ITEM], ttl=30), True, id="rss-ttl"),
        pytest.param(rss([ITEM], extra_channel_xml=_HOURLY_TWICE_RSS), True, id="rss-sy"),
        pytest.param(
            rss([ITEM], ttl=30, extra_channel_xml=OUTSIDE_SUBSET), False, id="rss-ttl-proven"
        ),  # fmt: skip
        pytest.param(_rdf(_HOURLY_TWICE), False, id="rss1-rdf-sy"),
        pytest.param(_atom(_HOURLY_TWICE), True, id="atom-sy"),
        pytest.param(_atom(_HOURLY_TWICE + OUTSIDE_SUBSET), False, id="atom-sy-proven"),
    ],
)
def test_the_fast_path_keeps_the_feeds_refresh_hint(
    body: str, in_subset: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = body.encode()
    reference = parse_feed(content, "http://x/")
    assert reference.refresh_hint == 30 * 60
    parser = FeedParser()
    if not in_subset:
        for _ in range(PROOF_POLLS):
            parser.parse("s", content, "http://x/")
        assert parser.fast_sources() == ["s"]
    _without_feedparser(monkeypatch)
    assert parser.parse("s", content, "http://x/") == reference


def test_a_source_whose_refresh_hint_reads_differently_is_not_proven() -> None:
    # feedparser takes a <ttl> inside <image> as the feed's; the fast path reads
    # only the channel's own children. Entries agree, so only the hint can tell.
    # Both outside the subset (a <ttl> is not among an <image>'s children there).
    plain = rss([ITEM], extra_channel_xml=OUTSIDE_SUBSET).encode()
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


def test_a_proven_sources_body_beyond_its_proof_is_read_by_feedparser() -> None:
    """Proven on dated items with GUIDs, the source later lists an undated item and
    one without a GUID: fastfeedparser would date the first from its guid ("a" gave
    2026-01-05) and give the second its link as GUID; feedparser reads them."""
    parser = FeedParser(proof_polls=0)  # proven
    items = [FeedItem(title="Undated", link="https://e.example/u", guid="a", description="x"),
             FeedItem(title="No GUID", link="https://e.example/n", description="y")]  # fmt: skip
    body = _outside_subset(rss(items))

    read = parser.parse("s", body, "http://x/")

    assert read == parse_feed(body, "http://x/")
    assert [(e.guid, e.published) for e in read.entries] == [("a", None), (None, None)]
    # A body that stays within the proof still takes the fast path.
    proven_body = _outside_subset(realistic_feed(20, seed=4))
    assert watchers.fastparse._tree_agrees(
        watchers.fastparse._well_formed_root(proven_body), parser.parse("s", proven_body, "x")
    )


def test_an_atom_entry_with_replies_and_enclosure_links_stays_on_the_fast_path() -> None:
    entry = ('<entry><title>Met report</title><id>urn:a</id>'
             '<link rel="alternate" href="https://e.example/a"/>'
             '<link rel="replies" href="https://e.example/a/comments"/>'
             '<link rel="enclosure" href="https://e.example/a.mp3"/>'
             "<updated>2024-01-01T00:00:00Z</updated></entry>")  # fmt: skip
    body = _atom(OUTSIDE_SUBSET).replace("  <entry>", entry + "\n  <entry>", 1).encode()
    root = watchers.fastparse._well_formed_root(body)
    fast = watchers.fastparse._parse_fast(body, "http://x/", root)

    assert fast == parse_feed(body, "http://x/")
    assert watchers.fastparse._tree_agrees(root, fast)
