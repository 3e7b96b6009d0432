"""A fetched body as entries or items, read according to its source's kind.

    feed     ─▶ parse (fast path where proven, else feedparser) ─▶ normalise
    page     ─▶ article links picked by the source's CSS selector ─▶ normalise
    sitemap  ─▶ entries of the sitemap (and of an index's newest children) ─▶ normalise

The pipeline reads every poll through ``SourceReader.read``; ``metwatch
preview`` reads through ``SourceReader.entries``, so what it shows is what a
poll would store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import ParamSpec, TypeVar

from metwatch.models import FetchResult, ParsedFeed, RawEntry, SourceSpec
from metwatch.offload import ReadFeed, normalised, read_and_normalise
from metwatch.workers import Offload, WorkerDied, in_thread
from watchers.addresses import ensure_public
from watchers.fastparse import FeedParser, Reading, parser_died, read_feed
from watchers.fetch import Fetcher
from watchers.newest import SITEMAP_MAX_ENTRIES, feed_entries, newest_entries
from watchers.pages import links_from_listing
from watchers.sitemaps import Sitemap, parse_sitemap

#: A sitemap index is read through this many of its newest child sitemaps (the
#: rest are archives), and not recursively.
SITEMAP_CHILDREN = 2

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entries:
    """A body's entries before normalisation, and how they were read."""

    feed: ParsedFeed
    reading: Reading = "none"


class SourceReader:
    """Reads fetched bodies; child sitemaps are fetched through ``document_fetcher``."""

    def __init__(
        self,
        document_fetcher: Fetcher,
        *,
        feed_parser: FeedParser | None = None,
        offload: Offload = in_thread,
        allow_private: bool = False,
        fulltext_min_chars: int = 0,
    ) -> None:
        self.document_fetcher = document_fetcher
        #: Which parser reads each source's bodies (feedparser, or the fast one
        #: where it is proven equal).
        self.feed_parser = feed_parser or FeedParser()
        #: Where parsing runs: a thread here, or a worker process.
        self.offload = offload
        #: Let child-sitemap fetches reach non-public addresses (tests).
        self.allow_private = allow_private
        #: New items with less text than this are teasers (full text wanted).
        self.fulltext_min_chars = fulltext_min_chars

    async def read(self, spec: SourceSpec, fetched: FetchResult, now: datetime) -> ReadFeed:
        """The body's items, with its teasers and refresh hint."""
        if spec.kind in ("page", "sitemap"):
            # Links and titles only: little to normalise, so here.
            listed, whole = await self._listed(spec, fetched)
            read = normalised(listed, spec, now, self.fulltext_min_chars)
            return read if whole else replace(read, revalidates=False)
        # Parsing and normalising are CPU work, done in one call: off the loop, in
        # a worker process when there is one, so the loop keeps serving fetches.
        how = self.feed_parser.how(spec.id)
        read = await self._offloaded(
            fetched.final_url, read_and_normalise, how, fetched.content, fetched.final_url,
            fetched.content_type, spec, now, self.fulltext_min_chars,
        )  # fmt: skip
        self.feed_parser.learn(spec.id, read.reading)
        return read

    async def entries(self, spec: SourceSpec, fetched: FetchResult) -> Entries:
        """The body's entries as parsed, before normalisation (for inspection)."""
        if spec.kind in ("page", "sitemap"):
            listed, _ = await self._listed(spec, fetched)
            return Entries(ParsedFeed(tuple(listed)))
        how = self.feed_parser.how(spec.id)
        feed, reading = await self._offloaded(
            fetched.final_url, read_feed, how, fetched.content, fetched.final_url,
            fetched.content_type,
        )  # fmt: skip
        # What a poll reads of a long feed (``feed_entries``), so preview shows it.
        return Entries(replace(feed, entries=feed_entries(feed.entries)), reading)

    async def _listed(
        self, spec: SourceSpec, fetched: FetchResult
    ) -> tuple[Sequence[RawEntry], bool]:
        """The entries a page or sitemap lists, and whether the body holds them all
        (False for a sitemap index: they are in its children)."""
        # Parsed off the loop (a worker process when there is one), as feeds are: a
        # big listing or sitemap must not stall the fetches, the bot and deliveries.
        if spec.kind == "page":
            return await self._offloaded(
                fetched.final_url, links_from_listing, fetched.content, fetched.final_url,
                spec.link_selector or "", fetched.content_type,
            ), True  # fmt: skip
        sitemap = await self._sitemap(fetched)
        return await self._sitemap_entries(sitemap), not sitemap.children

    async def _sitemap(self, fetched: FetchResult) -> Sitemap:
        # A gzipped sitemap is inflated up to the response cap, not the protocol's 50 MB.
        cap = self.document_fetcher.max_bytes
        return await self._offloaded(
            fetched.final_url, parse_sitemap, fetched.content, fetched.final_url, max_bytes=cap
        )

    async def _offloaded(
        self, url: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``offload(fn, *args)`` for a body of ``url``: a worker lost to it (killed,
        or out of time) is that source's ``ParseError``, with the reason."""
        try:
            return await self.offload(fn, *args, **kwargs)
        except WorkerDied as e:
            raise parser_died(url, e) from e

    async def _sitemap_entries(self, sitemap: Sitemap) -> tuple[RawEntry, ...]:
        entries = list(sitemap.entries)
        for url in sitemap.children[:SITEMAP_CHILDREN]:
            # Child URLs come from the document, not from the rules file.
            await ensure_public(url, allow_private=self.allow_private)
            child = await self.document_fetcher.fetch(url)
            entries += (await self._sitemap(child)).entries
        return newest_entries(entries, SITEMAP_MAX_ENTRIES)
