"""The fetcher's limits against real local servers: the decoded size (stacked and
bomb content codings), one deadline for the whole request, limits shared between
Fetchers, and HTTP dates whose zone is "-0000" or missing."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from metwatch.app import Service
from metwatch.errors import FetchError
from metwatch.settings import load_settings
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer, closed_port_url
from tests.support.feeds import FeedItem, rss
from watchers.fetch import Fetcher, FetchLimits, retry_after_seconds

CAP = 1_000_000
GIGABYTE = 1_000_000_000
#: Far below any inflated size here, yet well above what a capped fetch needs.
PEAK_LIMIT = 8 * CAP
#: A feed of about 250 KB: several network chunks, well under the cap.
FEED = rss(
    [FeedItem(title=f"Item {n}", link=f"https://news.example.com/{n}", guid=f"g{n}")
     for n in range(1500)]
).encode()  # fmt: skip


@pytest.fixture
def fetcher(client: httpx.AsyncClient) -> Fetcher:
    return Fetcher(client, max_bytes=CAP)


async def _fetch_failure(fetcher: Fetcher, url: str) -> tuple[FetchError, int]:
    """The FetchError the fetch ends with, and the peak bytes Python allocated meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(url)
        return caught.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _deflated_zeros(size: int) -> bytes:
    """Raw deflate data inflating to ``size`` zero bytes, built in well under a second.

    A 1 MiB block ended with a full flush resets the compressor, so its output
    can be repeated. There is no end of stream: every fetch stops at the cap first.
    """
    block = b"\0" * (1 << 20)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return (deflater.compress(block) + deflater.flush(zlib.Z_FULL_FLUSH)) * (size >> 20)


def _bomb(coding: str) -> bytes:
    """About 1 MB on the wire, 1 GB once decoded; the headers say what wraps the data."""
    headers = {
        "gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff",
        "deflate-zlib": b"\x78\xda",
        "deflate-raw": b"",
    }
    return headers[coding] + _deflated_zeros(GIGABYTE)


def _encoded(body: bytes, coding: str) -> bytes:
    if coding in ("gzip", "x-gzip"):
        return gzip.compress(body)
    if coding == "deflate-zlib":
        return zlib.compress(body)
    if coding == "deflate-raw":
        deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        return deflater.compress(body) + deflater.flush()
    return body


# -- 1. the decoded size stays under the cap -------------------------------------------


@pytest.mark.parametrize("codings", ["gzip, gzip", "deflate, gzip", "gzip,x-gzip"])
async def test_stacked_codings_are_refused_without_inflating(
    feed_server: FeedServer, fetcher: Fetcher, codings: str
) -> None:
    # Each layer multiplies the ratio: 1 GB of zeros in about 1 KB on the wire.
    inner = gzip.compress(_bomb("gzip"))
    feed_server.serve("/stacked.xml", inner, headers={"Content-Encoding": codings})
    started = time.monotonic()

    error, peak = await _fetch_failure(fetcher, feed_server.url("/stacked.xml"))

    named = ", ".join(c.strip() for c in codings.split(","))
    assert str(error).startswith(f"more than one content coding ({named}): refused")
    assert peak < PEAK_LIMIT
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("coding", ["gzip", "deflate-zlib", "deflate-raw"])
async def test_a_bomb_is_cut_off_at_the_cap_without_inflating_it(
    feed_server: FeedServer, fetcher: Fetcher, coding: str
) -> None:
    header = coding.split("-")[0]
    feed_server.serve("/bomb.xml", _bomb(coding), headers={"Content-Encoding": header})
    started = time.monotonic()

    error, peak = await _fetch_failure(fetcher, feed_server.url("/bomb.xml"))

    assert str(error).startswith("response larger than 1 MB: aborted")
    # httpx alone inflated a whole 64 KB network chunk (64 MB here) before we could count.
    assert peak < PEAK_LIMIT
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("coding", "header"),
    [
        ("identity", None),
        ("identity", "identity"),
        ("gzip", "gzip"),
        ("x-gzip", "x-gzip"),
        ("gzip", "identity, GZIP"),
        ("deflate-zlib", "deflate"),
        ("deflate-raw", "deflate"),
    ],
)
async def test_each_supported_coding_decodes_to_the_body(
    feed_server: FeedServer, fetcher: Fetcher, coding: str, header: str | None
) -> None:
    headers = {"Content-Encoding": header} if header else {}
    feed_server.serve("/feed.xml", _encoded(FEED, coding), headers=headers)

    result = await fetcher.fetch(feed_server.url("/feed.xml"))

    assert result.content == FEED


async def test_a_body_exactly_at_the_cap_is_kept(
    feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    fetcher = Fetcher(client, max_bytes=len(FEED))
    feed_server.serve("/feed.xml", gzip.compress(FEED), headers={"Content-Encoding": "gzip"})

    assert (await fetcher.fetch(feed_server.url("/feed.xml"))).content == FEED

    fetcher.max_bytes = len(FEED) - 1
    with pytest.raises(FetchError, match="response larger than"):
        await fetcher.fetch(feed_server.url("/feed.xml"))


async def test_only_the_codings_it_decodes_are_asked_for(feed_server: FeedServer) -> None:
    feed_server.serve("/feed.xml", FEED)
    headers = {"Accept-Encoding": "gzip, deflate, br, zstd"}  # as httpx with brotli, zstandard
    async with httpx.AsyncClient(timeout=2, headers=headers) as client:
        await Fetcher(client, max_bytes=CAP).fetch(feed_server.url("/feed.xml"))

    assert feed_server.requests("/feed.xml")[0].headers["accept-encoding"] == "gzip, deflate"


async def test_an_unknown_coding_is_refused(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/feed.xml", FEED, headers={"Content-Encoding": "br"})

    with pytest.raises(FetchError, match=re.escape("unsupported content coding: br")):
        await fetcher.fetch(feed_server.url("/feed.xml"))


async def test_corrupt_gzip_cannot_be_decoded(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/feed.xml", b"not gzip at all", headers={"Content-Encoding": "gzip"})

    with pytest.raises(FetchError, match="^cannot decode the response: "):
        await fetcher.fetch(feed_server.url("/feed.xml"))


# -- a local server for what FeedServer does not script --------------------------------


Answer = Callable[[BaseHTTPRequestHandler, threading.Event], None]


class _LocalServer:
    """A bare HTTP/1.0 server on 127.0.0.1 answering every GET with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        stop = self.stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                # The client gives up on a drip: that is what the test expects.
                with contextlib.suppress(ConnectionError):
                    answer(self, stop)

            def log_message(self, format: str, *args: object) -> None:
                """Silent."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self) -> _LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _drip(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """Promise 100 KB, then send one byte every 0.1 s: each read is quick, the body never ends."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/rss+xml")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    while not stop.wait(0.1):
        handler.wfile.write(b" ")
        handler.wfile.flush()


class _Concurrency:
    """Answers after 0.2 s, recording the most requests it was answering at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 0
        self.peak = 0

    def answer(self, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        with self._lock:
            self._now += 1
            self.peak = max(self.peak, self._now)
        stop.wait(0.2)
        with self._lock:
            self._now -= 1
        body = FEED[:1000]
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture
def drip_server() -> Iterator[_LocalServer]:
    with _LocalServer(_drip) as server:
        yield server


# -- 2. one deadline for the whole request ----------------------------------------------


async def test_a_server_dripping_bytes_is_cut_off_at_the_timeout(
    drip_server: _LocalServer, fetcher: Fetcher
) -> None:
    started = time.monotonic()

    with pytest.raises(FetchError, match=re.escape("timed out after 0.5 s")):
        await fetcher.fetch(drip_server.url("/feed.xml"))

    assert time.monotonic() - started < 1.5


async def test_waiting_for_a_slot_does_not_count_against_the_timeout(
    feed_server: FeedServer, client: httpx.AsyncClient
) -> None:
    # Four 0.25 s answers one at a time: the last waits 0.75 s, more than the
    # 0.5 s timeout, yet its own request takes only 0.25 s.
    fetcher = Fetcher(client, max_bytes=CAP, per_host=1)
    feed_server.serve("/slow.xml", FEED, delay=0.25)

    results = await asyncio.gather(
        *(fetcher.fetch(feed_server.url("/slow.xml")) for _ in range(4))
    )

    assert [r.content for r in results] == [FEED] * 4


# -- 3. limits shared between Fetchers ---------------------------------------------------


@pytest.mark.parametrize(("shared", "expected_peak"), [(True, 1), (False, 2)])
async def test_fetchers_sharing_limits_send_one_request_at_a_time_to_a_host(
    shared: bool, expected_peak: int
) -> None:
    concurrency = _Concurrency()
    limits = FetchLimits(max_concurrent=8, per_host=1)
    with _LocalServer(concurrency.answer) as server:
        async with httpx.AsyncClient(timeout=5) as feeds, httpx.AsyncClient(timeout=5) as docs:
            feed_fetcher = Fetcher(feeds, max_bytes=CAP, limits=limits)
            document_fetcher = (
                Fetcher(docs, max_bytes=CAP, limits=limits) if shared
                else Fetcher(docs, max_bytes=CAP, max_concurrent=8, per_host=1)
            )  # fmt: skip
            await asyncio.gather(
                *(f.fetch(server.url(f"/{n}")) for n in range(3)
                  for f in (feed_fetcher, document_fetcher))
            )  # fmt: skip

    # Unshared, each Fetcher keeps its own per_host=1: the host gets two at once.
    assert concurrency.peak == expected_peak


def test_limits_and_their_numbers_are_not_both_given(client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="either limits"):
        Fetcher(client, max_bytes=CAP, per_host=1, limits=FetchLimits())


async def test_the_service_fetchers_share_one_set_of_limits(tmp_path: Path, db_url: str) -> None:
    source = {"id": "feed", "name": "Feed", "interval": 300, "url": "http://127.0.0.1:9/f.xml"}
    settings = load_settings(database_url=db_url, rules_path=write_rules(tmp_path, [source]),
                             worker_processes=0, max_fetches_per_host=1)  # fmt: skip
    service = Service(settings)
    try:
        assert service.fetcher.limits is service.document_fetcher.limits
        assert service.fetcher.limits.per_host == 1
    finally:
        await service.close()


# -- 4. HTTP dates with "-0000" or no zone are UTC --------------------------------------

AN_HOUR_BEFORE = datetime(2098, 12, 31, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Thu, 01 Jan 2099 00:00:00 -0000", 3600.0),
        ("Thu, 01 Jan 2099 00:00:00", 3600.0),
        ("Thu, 01 Jan 2099 00:00:00 GMT", 3600.0),
        ("Thu, 01 Jan 2099 01:00:00 +0100", 3600.0),
        ("Thu, 01 Jan 1998 00:00:00 -0000", 0.0),
        ("120", 120.0),
        ("next week", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, now=AN_HOUR_BEFORE) == expected


def _in_an_hour_without_zone() -> str:
    """An HTTP date an hour from now, written with the "-0000" zone (naive when parsed)."""
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None)
    return format_datetime(naive)


async def test_a_429_with_a_minus_zero_zone_date_gives_its_wait(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    retry_after = _in_an_hour_without_zone()
    assert retry_after.endswith("-0000")
    feed_server.serve("/busy.xml", "busy", status=429, headers={"Retry-After": retry_after})

    error, _ = await _fetch_failure(fetcher, feed_server.url("/busy.xml"))

    assert str(error).startswith("HTTP 429: asked to retry after ")
    assert error.retry_after is not None
    assert 3500 < error.retry_after <= 3600


async def test_expires_with_a_minus_zero_zone_is_a_wait_hint(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/feed.xml", FEED, headers={"Expires": _in_an_hour_without_zone()})

    result = await fetcher.fetch(feed_server.url("/feed.xml"))

    assert result.wait_hint is not None
    assert 3500 < result.wait_hint <= 3600


async def test_hosts_nothing_is_asking_for_are_not_kept(feed_server: FeedServer) -> None:
    """Article links bring new hosts for as long as metwatch runs: a host's place is
    kept only while a request to it is in flight or waiting, and the limit holds."""
    feed_server.serve("/slow.xml", rss([]), delay=0.3)
    limits = FetchLimits(max_concurrent=8, per_host=1)
    async with httpx.AsyncClient(timeout=5) as client:
        fetcher = Fetcher(client, max_bytes=CAP, limits=limits)
        refused = [closed_port_url(f"/{n}") for n in range(40)]  # 40 hosts (host:port)
        results = await asyncio.gather(*(fetcher.fetch(u) for u in refused),
                                       return_exceptions=True)  # fmt: skip
        assert all(isinstance(r, FetchError) for r in results)
        assert limits.hosts_tracked() == 0

        slow = [asyncio.create_task(fetcher.fetch(feed_server.url("/slow.xml"))) for _ in range(3)]
        await asyncio.sleep(0.1)
        assert limits.hosts_tracked() == 1
        started = time.perf_counter()
        await asyncio.gather(*slow)
        assert time.perf_counter() - started >= 0.5  # one at a time: 3 x 0.3 s
        assert limits.hosts_tracked() == 0


async def test_the_unanswered_hold_is_for_article_pages_only(feed_server: FeedServer) -> None:
    """An article page that timed out holds the site's other article pages, never a
    source, a child sitemap or robots.txt on it."""
    feed_server.serve("/hung", "<html></html>", content_type="text/html", delay=3)
    feed_server.serve("/feed.xml", rss([]))
    async with httpx.AsyncClient(timeout=0.5) as client:
        fetcher = Fetcher(client, max_bytes=CAP, unanswered_hold=300)
        with pytest.raises(FetchError, match="timed out"):
            await fetcher.fetch(feed_server.url("/hung"), hold_unanswered=True)
        with pytest.raises(FetchError, match="not asked: the site did not answer"):
            await fetcher.fetch(feed_server.url("/other-article"), hold_unanswered=True)
        assert (await fetcher.fetch(feed_server.url("/feed.xml"))).content
    assert feed_server.requests("/other-article") == []
