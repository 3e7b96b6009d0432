"""parse_feed, the reference parser: what it makes of links a feed writes relatively."""

from __future__ import annotations

from watchers.fastparse import FeedParser
from watchers.parse import parse_feed

RELATIVE = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>Press office</title><link>/</link>
<item><title>Inspection report</title><link>/news/2024/report.html</link>
<guid isPermaLink="false">x1</guid><pubDate>Thu, 15 Aug 2024 09:00:00 GMT</pubDate></item>
</channel></rss>"""


def test_relative_entry_links_resolve_against_the_feed_url() -> None:
    parsed = parse_feed(RELATIVE, "https://press.example/feeds/news.xml")

    assert parsed.entries[0].link == "https://press.example/news/2024/report.html"


def test_relative_links_resolve_the_same_on_the_fast_path() -> None:
    parser = FeedParser(proof_polls=1)
    url = "https://press.example/feeds/news.xml"
    for _ in range(3):  # the proof, then the fast path
        parsed = parser.parse("press", RELATIVE, url)
        assert parsed.entries[0].link == "https://press.example/news/2024/report.html"
    assert parser.fast_sources() == ["press"]
