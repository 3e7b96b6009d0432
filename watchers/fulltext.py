"""Full text for teaser-only items: fetch the article page, extract its main text.

Many feeds carry only a headline and a sentence, too little for the findings'
clauses to match. For such an item (``watchers.teasers``) this fetches the
linked page through the shared ``Fetcher`` (size cap, timeout, per-host
limits), following redirects hop by hop and refusing, at each hop, non-public
addresses (``watchers.addresses``) and pages their site's robots.txt keeps
metwatch from (``watchers.crawl_policy``), checks
that it is HTML, decodes it (``watchers.pages.decode_html``) and extracts the
main text with trafilatura, without navigation, adverts or comments.

What it does not do: decide which items to fetch. The pipeline calls
``ArticleTexts.fill`` only for items that are new to the store, so each article
page is fetched once; a page that fails is not retried. It keeps no cache,
does not follow pagination, does not run JavaScript, and does not read PDFs or images (those
give None).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace

import trafilatura

from metwatch.errors import FetchError, SourceError
from metwatch.models import FetchResult, Item, RawEntry
from watchers.addresses import ensure_public
from watchers.article import article_from_html
from watchers.crawl_policy import CrawlPolicy
from watchers.fetch import MAX_REDIRECTS, Fetcher
from watchers.normalise import normalise_unicode
from watchers.pages import decode_html
from watchers.teasers import Teaser

log = logging.getLogger(__name__)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
#: Seconds one poll waits for its article pages. Pages still coming then are left
#: (their items keep their feed text): a slow site must not hold up the tick, and
#: with it every other source.
FULL_TEXT_BUDGET = 60.0
#: A page's headline (None: keep the item's) and main text (None: none).
_PageText = tuple[str | None, str | None]


class ArticleTexts:
    """The full-text step: new teaser-only items get their article's main text.

    The Fetcher's limits (and ``policy``: robots.txt, Crawl-delay, a site's
    Retry-After) keep this polite; an item whose page fails keeps its feed text.
    """

    def __init__(
        self, fetcher: Fetcher, *, allow_private: bool, policy: CrawlPolicy | None = None,
        budget: float = FULL_TEXT_BUDGET,
    ) -> None:  # fmt: skip
        self.fetcher = fetcher
        self.budget = budget
        #: Let article fetches reach non-public addresses (tests).
        self.allow_private = allow_private
        self.policy = policy
        #: Pages being fetched, by canonical link: the same article new in two feeds
        #: polled in one tick is fetched once, and both copies wait for it.
        self._in_flight: dict[tuple[str, bool], asyncio.Task[_PageText]] = {}

    async def fill(self, items: Sequence[Item], teasers: dict[str, Teaser]) -> list[Item]:
        """``items``, those named in ``teasers`` with their article's text."""
        wanted = {
            item.id: asyncio.ensure_future(self._one(item, teaser))
            for item in items
            if (teaser := teasers.get(item.id)) is not None
        }
        if not wanted:
            return list(items)
        try:
            done, pending = await asyncio.wait(wanted.values(), timeout=self.budget)
        finally:
            for task in wanted.values():
                task.cancel()  # the pages still coming (all of them when cancelled)
        if pending:
            log.warning("no full text for %d items: their pages took longer than the poll's "
                        "%g s for article pages", len(pending), self.budget)  # fmt: skip
        filled = {item_id: task.result() for item_id, task in wanted.items() if task in done}
        return [filled.get(item.id, item) for item in items]

    async def _one(self, item: Item, teaser: Teaser) -> Item:
        try:
            return await self.with_text(item, teaser)
        except SourceError as e:
            log.warning("no full text for item %s: %s", item.id, e)
            return item
        except Exception:  # a bug met by one page costs its text, not the poll
            log.exception("no full text for item %s: unexpected error", item.id)
            return item

    async def with_text(self, item: Item, teaser: Teaser) -> Item:
        """``item`` with its article's main text (unchanged when the page has none).

        Raises:
            SourceError: the page was refused or failed (as ``fetch_full_text``).
        """
        key = (item.url or teaser.link, teaser.titled)
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._page_text(teaser))
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: a poll that stops waiting (its budget ran out) must not cancel
        # the page for another poll waiting on it.
        title, body = await asyncio.shield(task)
        if not body:
            return item
        # content_hash stays the feed's, so the next poll of the same entry is not
        # taken for an edit that would put the teaser back.
        return replace(item, title=title or item.title, body=normalise_unicode(body))

    def _forget(self, key: tuple[str, bool], task: asyncio.Task[_PageText]) -> None:
        self._in_flight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every poll waiting on it may have gone

    async def _page_text(self, teaser: Teaser) -> _PageText:
        link, private, cap = teaser.link, self.allow_private, self.fetcher.max_bytes
        if teaser.titled:
            body = await fetch_full_text(
                self.fetcher, link, allow_private=private, max_bytes=cap, policy=self.policy
            )
            return None, body
        if page := await fetch_article(
            self.fetcher, link, allow_private=private, max_bytes=cap, policy=self.policy
        ):
            # A plain sitemap gives links only: the page has the headline.
            return normalise_unicode(page.title) or None, page.content
        return None, None


async def fetch_full_text(
    fetcher: Fetcher, url: str, *, allow_private: bool, max_bytes: int,
    policy: CrawlPolicy | None = None,
) -> str | None:  # fmt: skip
    """Main text of the article page at ``url``; None when it is not HTML or has none.

    Raises:
        FetchError: the address is refused, ``policy`` keeps metwatch from the
            page, the fetch fails, or the page is larger than ``max_bytes`` (or
            the fetcher's own cap).
    """
    page = await _fetch_html(fetcher, url, allow_private, max_bytes, policy)
    if page is None:
        return None
    # Extraction parses the whole page: keep it off the event loop.
    return await asyncio.to_thread(_main_text, page) or None


async def fetch_article(
    fetcher: Fetcher, url: str, *, allow_private: bool, max_bytes: int,
    policy: CrawlPolicy | None = None,
) -> RawEntry | None:  # fmt: skip
    """Title and main text of the page at ``url``, for links that come without a
    title (a plain sitemap); None when it is not HTML or has no main text.

    Raises:
        FetchError: as ``fetch_full_text``.
    """
    page = await _fetch_html(fetcher, url, allow_private, max_bytes, policy)
    if page is None:
        return None
    entry = await asyncio.to_thread(article_from_html, page, link=url)
    return entry if entry.content else None


async def _fetch_html(
    fetcher: Fetcher, url: str, allow_private: bool, max_bytes: int, policy: CrawlPolicy | None
) -> str | None:
    fetched = await _fetch_page(fetcher, url, allow_private, policy)
    # The fetcher's cap bounds memory; this one lets article pages be held to less.
    if len(fetched.content) > max_bytes:
        raise FetchError(
            f"article page larger than {max_bytes / 1_000_000:g} MB: not read", url=url
        )
    media_type = fetched.content_type.split(";")[0].strip().lower()
    if media_type not in HTML_TYPES:
        log.debug("no full text for %s: content type %r is not HTML", url, media_type or None)
        return None
    return await asyncio.to_thread(decode_html, fetched.content, fetched.content_type)


async def _fetch_page(
    fetcher: Fetcher, url: str, allow_private: bool, policy: CrawlPolicy | None
) -> FetchResult:
    """GET ``url``, following redirects hop by hop: each hop must be a public address
    and allowed by its own site's robots.txt before it is requested (links often go
    through a tracker or an aggregator to the publisher)."""
    link = url
    for _ in range(MAX_REDIRECTS + 1):
        await ensure_public(url, allow_private=allow_private)
        if policy is not None:
            await policy.ensure_allowed(url)
        try:
            fetched = await fetcher.fetch(
                url, follow_redirects=False, media_types=HTML_TYPES, hold_unanswered=True
            )
        except FetchError as e:
            if policy is not None and e.status in (429, 503):
                policy.hold(url, e.retry_after)  # the site's next pages wait as it asked
            raise
        if fetched.location is None:
            return fetched
        url = fetched.location
    raise FetchError("too many redirects (a redirect loop?)", url=link)


def _main_text(page: str) -> str:
    # The same options as watchers.article.article_from_html, so an article reads
    # the same whether it came from a feed link or from `metwatch classify`.
    return trafilatura.extract(page, include_comments=False, include_tables=False) or ""
