"""How metwatch crawls the pages it finds by itself: robots.txt (RFC 9309),
Crawl-delay, and the waits sites ask for.

Article pages fetched for their full text are links from other people's
documents, so metwatch reads them as a polite crawler would: only where the
site's robots.txt lets its User-Agent in, and no faster than the site's
``Crawl-delay`` asks. The sources in the rules file are fetched as listed, as
feed readers do: a feed is published to be polled, and a listing page or a
sitemap is one its user chose.

As RFC 9309 says: robots.txt is read through the same ``Fetcher`` (limits,
size cap, redirects) and parsed by protego (Scrapy's parser: groups, ``*``
and ``$`` patterns, longest match wins); a 4xx answer means no rules, so
everything is allowed; a 429 or 5xx answer, a timeout or a network error means
the site is unreachable, so nothing is fetched from it until the next look (a
site whose robots.txt was read before keeps its last rules meanwhile, as the
RFC allows). An answer is kept per origin for a day (an unreachable one for an
hour); the first ``MAX_ROBOTS_BYTES`` are parsed (a file over the fetcher's
size cap counts as unreachable). Groups are matched on metwatch's product token (the
User-Agent up to its first "/"), not on words elsewhere in the header.

An article page answered with 429 or 503 holds the site's next pages for its
Retry-After (a minute when it names none): they wait for it, or are not
fetched when that is more than ``MAX_CRAWL_WAIT`` away.

Each hop of a redirect is checked against its own site's robots.txt by the
caller (``watchers.fulltext``). What it does not do: keep anything across
restarts, or space requests across several metwatch instances (Crawl-delay
slots are per process).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from protego import Protego

from metwatch.errors import FetchError
from watchers.fetch import Fetcher

#: How long a robots.txt is trusted (RFC 9309: no more than 24 hours).
ROBOTS_TTL = 24 * 3600.0
#: How long an unreachable robots.txt keeps its site's pages unfetched.
UNREACHABLE_TTL = 3600.0
#: RFC 9309 asks crawlers to parse at least 500 KiB.
MAX_ROBOTS_BYTES = 500 * 1024
#: Longest wait for a Crawl-delay slot; a page that would wait longer is not fetched.
MAX_CRAWL_WAIT = 30.0
#: Origins whose answers are kept (the oldest is forgotten first).
MAX_ORIGINS = 2000
#: How long a site that answers an article page with 429 or 503 and no Retry-After is
#: left alone; and the longest Retry-After honoured (a longer one counts as this).
DEFAULT_HOLD = 60.0
MAX_HOLD = 24 * 3600.0


@dataclass(slots=True)
class _Answer:
    #: The parsed rules; None when robots.txt was unreachable.
    rules: Protego | None
    #: Why it was unreachable (for the error message).
    reason: str
    expires: float
    #: Earliest time (loop clock) the next page of this origin may be fetched.
    next_slot: float = 0.0
    #: Until when (loop clock) the site asked for no requests (429/503), and its words.
    held_until: float = 0.0
    held_for: str = ""


class CrawlPolicy:
    """Each origin's robots.txt, read once a day, and how long each site asked
    metwatch to wait; one per process."""

    def __init__(
        self,
        fetcher: Fetcher,
        user_agent: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_origins: int = MAX_ORIGINS,
        max_crawl_wait: float = MAX_CRAWL_WAIT,
    ) -> None:
        self.fetcher = fetcher
        #: What robots.txt groups are matched on: "metwatch" of "metwatch/1.4 (+https://…)".
        self.user_agent = _product_token(user_agent)
        self._clock = clock
        self._max_origins = max_origins
        self._max_crawl_wait = max_crawl_wait
        self._answers: dict[str, _Answer] = {}
        #: One read per origin at a time: concurrent pages wait for the same answer.
        self._reading: dict[str, asyncio.Lock] = {}

    async def ensure_allowed(self, url: str) -> None:
        """Return when ``url`` may be fetched now (after its Crawl-delay, if any).

        Raises:
            FetchError: robots.txt disallows ``url`` for metwatch, could not be
                read (5xx, timeout, network), or this page's turn (Crawl-delay, or
                the site's Retry-After) is more than ``max_crawl_wait`` away.
        """
        origin = _origin(url)
        answer = await self._answer(origin)
        if answer.rules is None:
            raise FetchError(
                f"robots.txt of {origin} could not be read ({answer.reason}): "
                "its pages are not fetched until it can be",
                url=url,
            )
        if not answer.rules.can_fetch(url, self.user_agent):
            raise FetchError(f"robots.txt of {origin} disallows this page for metwatch", url=url)
        delay = float(answer.rules.crawl_delay(self.user_agent) or 0)
        if delay or answer.held_until:
            await self._wait_turn(answer, delay, url, origin)

    def hold(self, url: str, retry_after: float | None) -> None:
        """The site answered a page of ``url``'s origin with 429 or 503: fetch no page
        of it for ``retry_after`` seconds (``DEFAULT_HOLD`` when it named none)."""
        answer = self._answers.get(_origin(url))
        if answer is None:
            return
        seconds = min(MAX_HOLD, DEFAULT_HOLD if retry_after is None else retry_after)
        until = asyncio.get_running_loop().time() + seconds
        if until > answer.held_until:
            answer.held_until, answer.held_for = until, f"asked to retry after {seconds:g} s"

    async def _wait_turn(self, answer: _Answer, delay: float, url: str, origin: str) -> None:
        # A slot is reserved before waiting, so pages of one origin go out `delay`
        # apart in the order they asked; a page whose slot is too far off is refused
        # at once instead of holding its poll (aiolimiter can only wait).
        now = asyncio.get_running_loop().time()
        slot = max(now, answer.next_slot, answer.held_until)
        if slot - now > self._max_crawl_wait:
            why = (
                f"{origin} {answer.held_for}"
                if answer.held_until > now
                else f"robots.txt of {origin} asks for {delay:g} s between requests"
            )
            raise FetchError(f"{why}: not fetched now", url=url)
        answer.next_slot = slot + delay
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _answer(self, origin: str) -> _Answer:
        answer = self._answers.get(origin)
        if answer is not None and answer.expires > self._clock():
            return answer
        lock = self._reading.setdefault(origin, asyncio.Lock())
        async with lock:
            answer = self._answers.get(origin)
            if answer is None or answer.expires <= self._clock():
                answer = await self._read(origin)
                self._keep(origin, answer)
        return answer

    async def _read(self, origin: str) -> _Answer:
        try:
            fetched = await self.fetcher.fetch(origin + "/robots.txt")
        except FetchError as e:
            if e.status is not None and 400 <= e.status < 500 and e.status != 429:
                # No robots.txt (or none for us to read): no rules. A 429 is the
                # site asking for fewer requests, not an absent file.
                return _Answer(Protego.parse(""), "", self._clock() + ROBOTS_TTL)
            return _Answer(None, e.message, self._clock() + UNREACHABLE_TTL)
        # utf-8-sig: files saved by some editors start with a byte-order mark, which
        # would otherwise hide the first line (often the first User-agent).
        text = fetched.content[:MAX_ROBOTS_BYTES].decode("utf-8-sig", errors="replace")
        return _Answer(Protego.parse(text), "", self._clock() + ROBOTS_TTL)

    def _keep(self, origin: str, answer: _Answer) -> None:
        if (before := self._answers.pop(origin, None)) is not None:
            # A re-read does not reset the spacing: the last page's turn still counts.
            answer.next_slot = before.next_slot
            answer.held_until, answer.held_for = before.held_until, before.held_for
            if answer.rules is None and before.rules is not None:
                # Unreachable now, read before: RFC 9309 lets the last rules stand
                # (no page of a known site is refused for a blip); look again later.
                answer.rules, answer.reason = before.rules, ""
        # The newest last: the oldest is forgotten first.
        self._answers[origin] = answer
        while len(self._answers) > self._max_origins:
            oldest = next(iter(self._answers))
            del self._answers[oldest]
            self._reading.pop(oldest, None)


def _origin(url: str) -> str:
    """scheme://host[:port], without any user:password a link may carry."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme.lower()}://{host}{port}"


def _product_token(user_agent: str) -> str:
    found = re.match(r"[^\s/]+", user_agent.strip())
    return found.group(0) if found else user_agent
