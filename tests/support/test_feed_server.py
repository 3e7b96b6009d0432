"""Tests of the test-support code: FeedServer over real sockets, the feed builders,
and the hand-written fixture feeds in tests/data/feeds.

They check the support code only; metwatch's own fetcher and parser are tested elsewhere.
"""

from __future__ import annotations

import calendar
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest

from .feed_server import FeedServer, closed_port_url
from .feeds import FeedItem, atom, realistic_feed, rss

FEEDS_DIR = Path(__file__).resolve().parents[1] / "data" / "feeds"
MODIFIED = datetime(2024, 5, 14, 8, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http:
        yield http


# -- FeedServer ------------------------------------------------------------------


def test_serves_body_and_content_type(server: FeedServer, client: httpx.Client) -> None:
    server.serve("/feeds/a.xml", "<rss>é</rss>")

    response = client.get(server.url("/feeds/a.xml"))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert response.content == "<rss>é</rss>".encode()
    assert response.headers["content-length"] == str(len(response.content))
    assert server.url("feeds/a.xml") == f"{server.base_url}/feeds/a.xml"
    assert server.base_url == f"http://127.0.0.1:{server.port}"


def test_route_can_be_replaced_and_removed_while_running(
    server: FeedServer, client: httpx.Client
) -> None:
    server.serve("/changing.xml", b"one")
    assert client.get(server.url("/changing.xml")).content == b"one"

    server.serve("/changing.xml", b"two", content_type="text/xml")
    second = client.get(server.url("/changing.xml"))
    server.remove("/changing.xml")

    assert (second.content, second.headers["content-type"]) == (b"two", "text/xml")
    assert client.get(server.url("/changing.xml")).status_code == 404


def test_unknown_path_is_404(server: FeedServer, client: httpx.Client) -> None:
    assert client.get(server.url("/nothing-here.xml")).status_code == 404


def test_etag_gives_304_on_matching_if_none_match(
    server: FeedServer, client: httpx.Client
) -> None:
    server.serve("/etag.xml", "<rss/>", etag="v1")
    first = client.get(server.url("/etag.xml"))

    again = client.get(server.url("/etag.xml"), headers={"If-None-Match": first.headers["etag"]})
    changed = client.get(server.url("/etag.xml"), headers={"If-None-Match": '"v0"'})

    assert first.headers["etag"] == '"v1"'
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", '"v1"')
    assert changed.status_code == 200


def test_last_modified_gives_304_when_not_modified_since(
    server: FeedServer, client: httpx.Client
) -> None:
    server.serve("/lm.xml", "<rss/>", last_modified=MODIFIED)

    def status_since(when: datetime) -> int:
        since = format_datetime(when, usegmt=True)
        return client.get(server.url("/lm.xml"), headers={"If-Modified-Since": since}).status_code

    first = client.get(server.url("/lm.xml"))
    assert first.headers["last-modified"] == "Tue, 14 May 2024 08:30:00 GMT"
    assert status_since(MODIFIED) == 304
    assert status_since(MODIFIED + timedelta(days=1)) == 304
    assert status_since(MODIFIED - timedelta(seconds=1)) == 200


def test_gzip_is_decoded_by_client(server: FeedServer, client: httpx.Client) -> None:
    body = rss([FeedItem("Compressed")]) * 20
    server.serve("/gz.xml", body, gzip=True)

    response = client.get(server.url("/gz.xml"))
    plain = client.get(server.url("/gz.xml"), headers={"Accept-Encoding": "identity"})

    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) < len(body)
    assert response.text == body
    assert "content-encoding" not in plain.headers
    assert plain.text == body


def test_redirect_and_redirect_loop(server: FeedServer, client: httpx.Client) -> None:
    server.serve("/new.xml", "<rss/>")
    server.redirect("/old.xml", server.url("/new.xml"))
    server.redirect("/loop-a", "/loop-b", status=302)
    server.redirect("/loop-b", "/loop-a", status=302)

    response = client.get(server.url("/old.xml"), follow_redirects=True)

    assert response.url == server.url("/new.xml")
    assert [r.status_code for r in response.history] == [301]
    with pytest.raises(httpx.TooManyRedirects):
        client.get(server.url("/loop-a"), follow_redirects=True)


def test_429_with_retry_after(server: FeedServer, client: httpx.Client) -> None:
    server.serve("/busy.xml", "slow down", status=429, headers={"Retry-After": "120"})

    response = client.get(server.url("/busy.xml"))

    assert (response.status_code, response.headers["retry-after"]) == (429, "120")


def test_delay_makes_client_time_out(server: FeedServer) -> None:
    server.serve("/slow.xml", "<rss/>", delay=0.5)

    with httpx.Client(timeout=0.2) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.get(server.url("/slow.xml"))


def test_stream_with_length_is_exact(server: FeedServer, client: httpx.Client) -> None:
    server.serve_stream("/big.xml", 1_000_003, chunk=10_000)

    response = client.get(server.url("/big.xml"))

    assert response.headers["content-length"] == "1000003"
    assert len(response.content) == 1_000_003
    assert response.content.startswith(b"<?xml")


def test_stream_without_length_can_be_abandoned(server: FeedServer, client: httpx.Client) -> None:
    server.serve_stream("/huge.xml", 5_000_000, declare_length=False)
    received = 0

    with client.stream("GET", server.url("/huge.xml")) as response:
        assert "content-length" not in response.headers
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received >= 200_000:
                break

    assert 200_000 <= received < 5_000_000
    server.serve("/after.xml", "still alive")
    assert client.get(server.url("/after.xml")).text == "still alive"


def test_gzip_bomb_is_small_on_the_wire(server: FeedServer, client: httpx.Client) -> None:
    server.serve_gzip_bomb("/bomb.xml", 1024**3)

    with client.stream("GET", server.url("/bomb.xml")) as response:
        wire = sum(len(chunk) for chunk in response.iter_raw())

    assert response.headers["content-encoding"] == "gzip"
    assert wire == int(response.headers["content-length"])
    assert wire < 2 * 1024**2


def test_gzip_bomb_inflates_to_the_stated_size(server: FeedServer) -> None:
    size = 3 * 1024**2 + 123
    server.serve_gzip_bomb("/small-bomb.xml", size, fill=b"ab")

    with httpx.Client() as http:
        body = http.get(server.url("/small-bomb.xml")).content

    assert len(body) == size
    assert body[:4] == b"abab"
    assert zlib.crc32(body) == zlib.crc32(b"ab" * (size // 2) + b"a")


def test_request_log_records_headers_query_and_hits(
    server: FeedServer, client: httpx.Client
) -> None:
    server.serve("/logged.xml", "<rss/>")

    client.get(server.url("/logged.xml?page=2"), headers={"User-Agent": "metwatch-test/1.0"})
    client.head(server.url("/logged.xml"))

    logged = server.requests("/logged.xml")
    assert server.hits("/logged.xml") == 2
    assert [r.method for r in logged] == ["GET", "HEAD"]
    assert (logged[0].path, logged[0].query) == ("/logged.xml", "page=2")
    assert logged[0].headers["user-agent"] == "metwatch-test/1.0"
    assert logged[0].time <= logged[1].time <= time.monotonic()
    assert logged[0] in server.requests()


def test_closed_port_refuses_connections(client: httpx.Client) -> None:
    with pytest.raises(httpx.ConnectError):
        client.get(closed_port_url("/feed.xml"))


def test_server_is_silent_on_stderr(
    server: FeedServer, client: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    server.serve_stream("/quiet.xml", 2_000_000)
    client.get(server.url("/missing"))
    with client.stream("GET", server.url("/quiet.xml")) as response:
        next(response.iter_raw())
    time.sleep(0.1)

    assert capfd.readouterr().err == ""


# -- feed builders ---------------------------------------------------------------


def _items() -> list[FeedItem]:
    paris = timezone(timedelta(hours=2))
    return [
        FeedItem(
            'Met & Home Office <clash> over "vetting"',
            link="https://news.example.com/a?x=1&y=2",
            guid="item-1",
            description="<p>First <a href='https://e.com'>para</a></p>",
            published=datetime(2024, 5, 14, 9, 42, tzinfo=paris),
            author="Zoë Adams",
        ),
        FeedItem("Bare item"),
    ]


def _utc(parsed: time.struct_time) -> datetime:
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def test_rss_builder_parses_back() -> None:
    parsed = feedparser.parse(rss(_items(), title="Feed & co", ttl=30))

    first, bare = parsed.entries
    assert (parsed.bozo, parsed.version, parsed.feed.title) == (0, "rss20", "Feed & co")
    assert first.title == 'Met & Home Office <clash> over "vetting"'
    assert (first.link, first.id, first.author) == (
        "https://news.example.com/a?x=1&y=2",
        "item-1",
        "Zoë Adams",
    )
    assert _utc(first.published_parsed) == datetime(2024, 5, 14, 7, 42, tzinfo=UTC)
    assert not first.guidislink
    assert "<a href" in first.summary
    assert bare.title == "Bare item"
    assert not {"link", "id", "published_parsed", "summary"} & set(bare)


def test_atom_builder_parses_back() -> None:
    parsed = feedparser.parse(atom(_items(), title="Atom & co", feed_id="urn:x"))

    first, bare = parsed.entries
    assert (parsed.bozo, parsed.version, parsed.feed.title) == (0, "atom10", "Atom & co")
    assert parsed.feed.id == "urn:x"
    assert first.title == 'Met & Home Office <clash> over "vetting"'
    assert (first.link, first.id, first.author) == (
        "https://news.example.com/a?x=1&y=2",
        "item-1",
        "Zoë Adams",
    )
    assert _utc(first.published_parsed) == datetime(2024, 5, 14, 7, 42, tzinfo=UTC)
    assert bare.title == "Bare item"
    assert not {"link", "id", "published_parsed"} & set(bare)


def test_feed_item_rejects_naive_dates() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FeedItem("x", published=datetime(2024, 1, 1))


def test_realistic_feed_size_and_shape() -> None:
    document = realistic_feed(50, seed=1)
    parsed = feedparser.parse(document)

    assert 20_000 <= len(document.encode()) <= 60_000
    assert document == realistic_feed(50, seed=1)
    assert (parsed.bozo, len(parsed.entries)) == (0, 50)
    assert len({entry.id for entry in parsed.entries}) == 50
    assert len({entry.title for entry in parsed.entries}) > 40
    assert all(entry.summary.startswith("<p>") for entry in parsed.entries)


def test_realistic_feed_grows_to_target_bytes() -> None:
    document = realistic_feed(5, seed=2, target_bytes=300_000)

    assert len(document.encode()) >= 300_000
    assert len(feedparser.parse(document).entries) > 5


# -- fixture files ---------------------------------------------------------------


def _fixture(name: str) -> Any:
    return feedparser.parse((FEEDS_DIR / name).read_bytes())


def test_met_rss_fixture() -> None:
    parsed = _fixture("met-rss.xml")

    assert (parsed.bozo, parsed.version, len(parsed.entries)) == (0, "rss20", 3)
    assert all(entry.id and entry.link and entry.published_parsed for entry in parsed.entries)
    assert sorted(len(entry.summary) < 100 for entry in parsed.entries) == [False, False, True]


def test_met_atom_fixture() -> None:
    parsed = _fixture("met-atom.xml")

    assert (parsed.bozo, parsed.version, len(parsed.entries)) == (0, "atom10", 2)
    assert parsed.entries[0].title.startswith("PEEL 2023–25")


def test_broken_fixture_is_bozo_but_has_an_item() -> None:
    parsed = _fixture("broken.xml")

    assert parsed.bozo
    assert [entry.title for entry in parsed.entries] == [
        "Police & council launch knife crime summit"
    ]


def test_empty_fixture_has_no_items() -> None:
    parsed = _fixture("empty.xml")

    assert (parsed.bozo, parsed.version, parsed.entries) == (0, "rss20", [])


def test_html_fixture_is_not_a_feed() -> None:
    parsed = _fixture("not-a-feed.html")

    assert (parsed.version, parsed.entries) == ("", [])


def test_billion_laughs_fixture_does_not_expand() -> None:
    started = time.monotonic()
    parsed = _fixture("billion-laughs.xml")

    assert time.monotonic() - started < 2.0
    assert [entry.title for entry in parsed.entries] == ["Entity expansion test item"]
    assert len(parsed.entries[0].get("summary", "")) < 1000


def test_latin1_fixture_decodes() -> None:
    parsed = _fixture("latin1.xml")

    assert (parsed.bozo, parsed.encoding) == (0, "iso-8859-1")
    assert parsed.entries[0].title == "Café fined £500 after police raid in Soho"
