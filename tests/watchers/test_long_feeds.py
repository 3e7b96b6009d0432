"""A feed of more than FEED_MAX_ENTRIES entries: its first and its newest are read, in
the document's order, so no new entry is dropped and the same entry wins a repeat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from metwatch.models import FetchResult, SourceSpec
from metwatch.offload import read_and_normalise
from metwatch.pipeline import _unique
from metwatch.reading import SourceReader
from tests.support.feeds import FeedItem, rss
from watchers.fetch import Fetcher
from watchers.newest import FEED_MAX_ENTRIES

NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)
SPEC = SourceSpec("f", "F", "feed", "http://news.example.com/f.xml", 300)


def _archive(n: int) -> list[FeedItem]:
    return [
        FeedItem(
            title=f"Story {i}",
            link=f"https://news.example.com/{i}",
            guid=f"s{i}",
            published=NOW - timedelta(hours=i),
        )
        for i in range(n)
    ]


def _read(items: list[FeedItem]):  # type: ignore[no-untyped-def]
    return read_and_normalise(
        "reference",
        rss(items).encode() if isinstance(rss(items), str) else rss(items),
        SPEC.url,
        "application/rss+xml",
        SPEC,
        NOW,
        0,
    )


def _winner(total: int) -> str:
    """A GUID listed twice: first (top of the feed) with an older date, then lower
    with a newer one. Which text does a poll keep?"""
    dup_top = FeedItem(
        title="Top copy",
        link="https://news.example.com/dup",
        guid="dup",
        published=NOW - timedelta(days=400),
    )
    dup_low = FeedItem(
        title="Lower copy",
        link="https://news.example.com/dup",
        guid="dup",
        published=NOW - timedelta(minutes=1),
    )
    read = _read([dup_top, *_archive(total - 2), dup_low])
    return next(i.title for i in _unique(read.items) if i.url.endswith("/dup"))


def test_which_duplicate_guid_wins_does_not_depend_on_the_feeds_length() -> None:
    short, long = _winner(FEED_MAX_ENTRIES), _winner(FEED_MAX_ENTRIES + 1)
    assert short == "Top copy"  # first occurrence wins (pipeline._unique)
    assert long == short


def test_a_new_entry_on_top_with_an_old_date_is_read() -> None:
    """A new entry at the top of a long feed whose date is older than the 1,000th
    (backdated, or a CMS's original publication date): it would be
    dropped at every poll had only the newest by date been read."""
    new = FeedItem(
        title="Brand new",
        link="https://news.example.com/new",
        guid="new",
        published=NOW - timedelta(days=365),
    )
    read = _read([new, *_archive(FEED_MAX_ENTRIES)])
    assert "Brand new" in {i.title for i in read.items}


def test_a_new_undated_entry_of_a_long_dated_feed_is_read() -> None:
    """An undated entry at the top of a feed of more than 1,000 dated ones (the
    newest by date alone would leave out every undated entry)."""
    new = FeedItem(title="Undated news", link="https://news.example.com/u", guid="u")
    read = _read([new, *_archive(FEED_MAX_ENTRIES)])
    assert "Undated news" in {i.title for i in read.items}


async def test_preview_shows_what_a_poll_reads_of_a_long_feed() -> None:
    """``metwatch preview`` reads through ``SourceReader.entries``: the same entries a
    poll reads (``feed_entries``), not the whole archive."""
    new = FeedItem(title="Brand new", link="https://news.example.com/new", guid="new",
                   published=NOW - timedelta(days=365))  # fmt: skip
    body = rss([new, *_archive(FEED_MAX_ENTRIES + 100)])
    content = body.encode() if isinstance(body, str) else body
    fetched = FetchResult(SPEC.url, SPEC.url, 200, content, "application/rss+xml", None, None)
    async with httpx.AsyncClient() as client:
        reader = SourceReader(Fetcher(client, max_bytes=1_000_000))
        entries = (await reader.entries(SPEC, fetched)).feed.entries
    polled = _read([new, *_archive(FEED_MAX_ENTRIES + 100)]).items

    assert [e.title for e in entries] == [i.title for i in polled]
    assert len(entries) == FEED_MAX_ENTRIES + 1 and entries[0].title == "Brand new"
