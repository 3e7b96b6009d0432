"""feedparser in real worker processes: same result as in-process, errors cross
back with their sentence, and a worker that dies fails one poll, not metwatch."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from metwatch.errors import ParseError
from metwatch.models import ParsedFeed
from tests.support.feeds import realistic_feed
from watchers.fastparse import FeedParser
from watchers.parse import parse_feed
from watchers.parse_pool import ParsePool

URL = "http://feeds.example/news.xml"
DEADLY = b"<!-- kill the parser -->"


def dies_on_marker(content: bytes, url: str, content_type: str) -> ParsedFeed:
    """A parse that crashes its process, as a C-level crash or the OOM killer would."""
    if content.startswith(DEADLY):
        os._exit(1)
    return parse_feed(content, url, content_type)


@pytest.fixture
def pool() -> Iterator[ParsePool]:
    pool = ParsePool(1, parse=dies_on_marker)
    yield pool
    pool.close()


def test_a_worker_parses_as_feedparser_does(pool: ParsePool) -> None:
    body = realistic_feed(20, seed=3).encode()

    parsed = pool.parse(body, URL, "application/rss+xml")

    assert parsed == parse_feed(body, URL, "application/rss+xml")
    assert len(parsed.entries) == 20


def test_a_parse_error_comes_back_with_its_sentence(pool: ParsePool) -> None:
    with pytest.raises(ParseError) as caught:
        pool.parse(b"<html><body>Not here</body></html>", URL, "text/html")

    assert caught.value.message == "not a feed: got text/html"
    assert caught.value.url == URL


def test_a_dead_worker_fails_one_parse_and_is_replaced(pool: ParsePool) -> None:
    with pytest.raises(ParseError, match="parser process died"):
        pool.parse(DEADLY + realistic_feed(3, seed=1).encode(), URL)

    body = realistic_feed(5, seed=2).encode()
    assert pool.parse(body, URL) == parse_feed(body, URL)


def test_feed_parser_uses_the_pool_as_its_reference(pool: ParsePool) -> None:
    parser = FeedParser(proof_polls=1, reference=pool.parse)
    body = realistic_feed(10, seed=4).encode()

    first = parser.parse("s", body, URL)  # the proof: the worker's result is returned
    second = parser.parse("s", body, URL)  # proven: the fast path, no worker involved

    assert first == second == parse_feed(body, URL)
    assert parser.fast_sources() == ["s"]
