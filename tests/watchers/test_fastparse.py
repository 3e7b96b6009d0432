"""The fast parser is used for a source only once proven to read it as feedparser does."""

from __future__ import annotations

from pathlib import Path

import pytest

from metwatch.errors import ParseError
from tests.support.feeds import FeedItem, realistic_feed, rss
from watchers.fastparse import PROOF_POLLS, FeedParser
from watchers.parse import parse_feed

DATA = Path(__file__).resolve().parent.parent / "data" / "feeds"


def test_a_well_formed_source_earns_the_fast_path_with_identical_entries() -> None:
    parser = FeedParser()
    body = realistic_feed(50, seed=7).encode()
    for _ in range(PROOF_POLLS):
        assert parser.fast_sources() == []
        assert parser.parse("bbc", body, "http://x/") == parse_feed(body, "http://x/")
    assert parser.fast_sources() == ["bbc"]
    changed = realistic_feed(50, seed=8).encode()
    assert parser.parse("bbc", changed, "http://x/").entries == parse_feed(changed, "u").entries


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
