"""Fetch one source URL politely: conditional GET, timeouts, size cap, concurrency.

Every failure becomes a ``FetchError`` whose message is a sentence an admin can
act on ("timed out after 20 s", "HTTP 404", "response larger than 10 MB").
Limits (`FetchLimits`, shared by every Fetcher of a process): at most
``max_concurrent`` requests overall and ``per_host`` to one host. The client's
timeout bounds each whole request, body included, not just each read. The body
is read raw and decoded with a bound (``watchers.decoding``), so a 50 MB
response, a gzip bomb or stacked codings are cut off at the cap instead of
filling memory.

Does not parse, and does not decide when to poll (``watchers.schedule``).
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from metwatch.errors import FetchError
from metwatch.models import FetchResult
from watchers.addresses import ensure_public
from watchers.decoding import (
    ACCEPT_ENCODING,
    BoundedDecoder,
    CorruptContent,
    DecodedTooLarge,
    UnsupportedCoding,
)

_MAX_AGE = re.compile(r"max-age=(\d+)")
#: Redirects followed for one request (RFC 9309 asks at least five for robots.txt).
MAX_REDIRECTS = 5


class FetchLimits:
    """How many requests may be in flight: overall, and to any one host.

    One per process, shared by all its Fetchers (feeds and documents), so the
    limits hold for the process as a whole rather than once per Fetcher.
    """

    def __init__(self, *, max_concurrent: int = 8, per_host: int = 2) -> None:
        self.max_concurrent = max_concurrent
        self.per_host = per_host
        self._overall = asyncio.Semaphore(max_concurrent)
        #: Per host: its semaphore and the requests holding or waiting for it. A
        #: host nothing is asking for is dropped: article links bring new hosts
        #: for as long as metwatch runs.
        self._hosts: dict[str, tuple[asyncio.Semaphore, int]] = {}

    def hosts_tracked(self) -> int:
        """Hosts with a request in flight or waiting (the others are not kept)."""
        return len(self._hosts)

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold one overall and one per-host place while the block runs."""
        gate, users = self._hosts.get(host) or (asyncio.Semaphore(self.per_host), 0)
        self._hosts[host] = (gate, users + 1)
        try:
            # The host first: a request queued behind a busy host must not hold an
            # overall place that a request to an idle host could use.
            async with gate, self._overall:
                yield
        finally:
            gate, users = self._hosts[host]
            if users == 1:
                del self._hosts[host]
            else:
                self._hosts[host] = (gate, users - 1)


class Fetcher:
    """An HTTP client plus the politeness limits it shares (`FetchLimits`).

    Give ``limits`` to share them with other Fetchers; otherwise
    ``max_concurrent`` (default 8) and ``per_host`` (default 2) make new ones.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        max_bytes: int,
        max_concurrent: int | None = None,
        per_host: int | None = None,
        limits: FetchLimits | None = None,
        unanswered_hold: float = 0.0,
    ) -> None:
        if limits is not None and (max_concurrent is not None or per_host is not None):
            raise ValueError("give either limits or max_concurrent/per_host, not both")
        self.client = client
        self.max_bytes = max_bytes
        #: Seconds a site that did not answer (timeout, no connection) is not asked
        #: again by this Fetcher (0: always asked). For article pages: twenty links
        #: to a hung site would otherwise each wait out the timeout, holding the
        #: tick, and every other source, for minutes.
        self.unanswered_hold = unanswered_hold
        self._unanswered: dict[str, tuple[float, str]] = {}
        self.limits = limits or FetchLimits(
            max_concurrent=8 if max_concurrent is None else max_concurrent,
            per_host=2 if per_host is None else per_host,
        )

    @property
    def max_concurrent(self) -> int:
        return self.limits.max_concurrent

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None,
        follow_redirects: bool = True, media_types: frozenset[str] | None = None,
        hold_unanswered: bool = False,
    ) -> FetchResult:  # fmt: skip
        """GET ``url`` with conditional headers; 304 gives an empty FetchResult.

        ``follow_redirects=False``: a redirect is returned, with its ``location``,
        for the caller to check the next hop before it is requested.
        ``media_types``: the body is read only for these (a PDF linked as an
        article is not downloaded to be turned away); another gives an empty body.
        ``hold_unanswered``: this is an article page, which a site that left one
        unanswered is not asked for (``unanswered_hold``); sources, child sitemaps
        and robots.txt never pass it, so they are always asked.

        Raises:
            FetchError: network failure, timeout, non-2xx/304 status, too many
                redirects, or a body over the size cap.
        """
        # Whatever the client's default, ask only for codings the bounded decoder
        # undoes (httpx would add br and zstd once their packages are installed).
        headers = {"Accept-Encoding": ACCEPT_ENCODING}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        host = urlsplit(url).netloc.lower()
        async with self.limits.slot(host):
            # Checked once the slot is ours: requests queued behind the one that
            # found the site hung are not sent after it.
            if hold_unanswered:
                self._ensure_answering(host, url)
            try:
                return await self._fetch_in_slot(url, headers, follow_redirects, media_types)
            except FetchError as e:
                if hold_unanswered and e.unanswered and self.unanswered_hold > 0:
                    self._unanswered[host] = (time.monotonic() + self.unanswered_hold, e.message)
                raise

    async def _fetch_in_slot(
        self, url: str, headers: dict[str, str], follow: bool, media_types: frozenset[str] | None
    ) -> FetchResult:
        timeout = self.client.timeout.read
        try:
            # httpx's timeout is per read: a server sending a byte now and then
            # would hold the fetch for ever. The deadline starts once a slot is
            # ours, so waiting for the limits does not count against it.
            async with asyncio.timeout(timeout):
                return await self._get(url, headers, follow, media_types)
        except (TimeoutError, httpx.TimeoutException) as e:
            raise FetchError(
                f"timed out after {timeout or 0:g} s", url=url, unanswered=True
            ) from e
        except httpx.TooManyRedirects as e:
            raise FetchError("too many redirects (a redirect loop?)", url=url) from e
        except httpx.ConnectError as e:
            raise FetchError(f"cannot connect: {_reason(e)}", url=url, unanswered=True) from e
        except httpx.HTTPError as e:
            raise FetchError(f"network error: {_reason(e)}", url=url) from e

    def _ensure_answering(self, host: str, url: str) -> None:
        """Raise if ``host`` did not answer within ``unanswered_hold`` seconds."""
        held = self._unanswered.get(host)
        if held is None:
            return
        until, reason = held
        if time.monotonic() >= until:
            del self._unanswered[host]
            return
        raise FetchError(f"not asked: the site did not answer a moment ago ({reason})",
                         url=url, unanswered=True)  # fmt: skip

    async def _get(
        self, url: str, headers: dict[str, str], follow: bool, media_types: frozenset[str] | None
    ) -> FetchResult:
        async with self.client.stream(
            "GET", url, headers=headers, follow_redirects=follow
        ) as response:
            if response.status_code == 304:
                return _result(url, response, b"")
            if response.next_request is not None:  # a redirect, not followed
                return _result(url, response, b"", location=str(response.next_request.url))
            if response.status_code >= 400:
                raise _status_error(url, response)
            media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_types is not None and media_type not in media_types:
                return _result(url, response, b"")
            declared = int(response.headers.get("content-length") or 0)
            if declared > self.max_bytes:
                raise FetchError(self._too_large(), url=url)
            return _result(url, response, await self._read_body(url, response))

    async def _read_body(self, url: str, response: httpx.Response) -> bytes:
        """The decoded body, never more than ``max_bytes`` of it in memory."""
        codings = response.headers.get_list("content-encoding", split_commas=True)
        try:
            decoder = BoundedDecoder(codings, self.max_bytes)
        except UnsupportedCoding as e:
            raise FetchError(str(e), url=url) from e
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                body += decoder.decode(chunk)
        except DecodedTooLarge as e:
            raise FetchError(self._too_large(), url=url) from e
        except CorruptContent as e:
            raise FetchError(f"cannot decode the response: {_reason(e)}", url=url) from e
        return bytes(body)

    def _too_large(self) -> str:
        return f"response larger than {self.max_bytes / 1_000_000:g} MB: aborted"


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text.split("\n")[0][:200]


def _status_error(url: str, response: httpx.Response) -> FetchError:
    status = response.status_code
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    message = f"HTTP {status}"
    if status == 410:
        message = "HTTP 410: the feed is gone"
    elif status in (429, 503) and retry_after is not None:
        message = f"HTTP {status}: asked to retry after {retry_after:g} s"
    return FetchError(message, url=url, retry_after=retry_after, status=status)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = _parse_http_date(value)
    if when is None:
        return None
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def _wait_hint(response: httpx.Response) -> float | None:
    """How long the server says the response stays fresh (Cache-Control, Expires)."""
    cache_control = response.headers.get("cache-control", "")
    if m := _MAX_AGE.search(cache_control):
        return float(m.group(1))
    expires = response.headers.get("expires")
    when = _parse_http_date(expires) if expires else None
    if when is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _parse_http_date(value: str) -> datetime | None:
    """An aware datetime from an HTTP date; None if it is not one."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    # "-0000" or no zone at all parse as naive; HTTP dates are always UTC
    # (RFC 9110 5.6.7), and a naive one cannot be compared with an aware now.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _result(
    url: str, response: httpx.Response, body: bytes, location: str | None = None
) -> FetchResult:
    return FetchResult(
        url=url,
        final_url=str(response.url),
        status=response.status_code,
        content=body,
        content_type=response.headers.get("content-type", ""),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        wait_hint=_wait_hint(response),
        moved_to=_moved_to(response),
        location=location,
    )


#: Redirects that say the resource has moved for good (RFC 9110 15.4).
_PERMANENT = frozenset({301, 308})


def _moved_to(response: httpx.Response) -> str | None:
    """The last address reached from the requested one by permanent redirects only."""
    hops = [*response.history, response]
    moved = None
    for redirect, reached in zip(hops, hops[1:], strict=False):
        if redirect.status_code not in _PERMANENT:
            break
        moved = str(reached.url)
    return moved


def build_client(
    *, timeout: float, user_agent: str, public_only: bool = False
) -> httpx.AsyncClient:
    """An httpx client for watchers (redirects followed, at most 5).

    ``public_only``: every request, each redirect hop included, must go to a
    public address; for URLs that come from documents (article links, child
    sitemaps) rather than from the rules file, so a feed cannot make metwatch
    reach an internal service.
    """
    hooks = {"request": [_require_public]} if public_only else {}
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers={"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING},
        event_hooks=hooks,
    )


async def _require_public(request: httpx.Request) -> None:
    await ensure_public(str(request.url), allow_private=False)
