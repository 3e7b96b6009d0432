"""Sources that have moved: a permanent redirect is followed once, then polled directly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from bot.views import source_line
from classifiers.rules import load_rules
from metwatch.models import SourceSpec
from metwatch.pipeline import Pipeline
from metwatch.store import open_store
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer
from tests.support.feeds import rss
from tests.watchers.test_polling import ITEM, NOW, _pipeline, _poll_all


def _moved_to(pipeline: Pipeline) -> str | None:
    [health] = pipeline.store.source_health()
    return health.moved_to


def _alerts(pipeline: Pipeline) -> list[str]:
    alerts: list[str] = []

    async def alert(text: str) -> None:
        alerts.append(text)

    pipeline.alert_admins = alert
    return alerts


async def _moved_once(
    folder: Path, db_url: str, server: FeedServer, http: httpx.AsyncClient, old: str, new: str
) -> tuple[Pipeline, list[str]]:
    """A source at ``old`` that has moved to ``new`` (301), polled once; its alerts."""
    server.serve(new, rss([ITEM]))
    server.redirect(old, new, status=301)
    pipeline = _pipeline(folder, db_url, http, {"news": server.url(old)})
    alerts = _alerts(pipeline)
    await _poll_all(pipeline)
    assert _moved_to(pipeline) == server.url(new)
    return pipeline, alerts


@pytest.mark.parametrize("status", [301, 308])
async def test_a_permanent_redirect_is_followed_once_then_polled_at_the_new_address(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient,
    status: int,
) -> None:  # fmt: skip
    feed_server.serve("/new.xml", rss([ITEM]), etag="v1")
    feed_server.redirect("/old.xml", feed_server.url("/new.xml"), status=status)
    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/old.xml")})
    alerts = _alerts(pipeline)

    first = await _poll_all(pipeline)
    second = await _poll_all(pipeline)

    assert len(first["news"].value.new_items) == 1  # type: ignore[union-attr]
    assert second["news"].value is None  # 304 from the new address
    assert feed_server.hits("/old.xml") == 1
    assert feed_server.hits("/new.xml") == 2
    assert feed_server.requests("/new.xml")[1].headers.get("if-none-match") == '"v1"'
    assert _moved_to(pipeline) == feed_server.url("/new.xml")
    assert alerts == [
        f"Source news (news) has moved permanently to {feed_server.url('/new.xml')}; "
        "metwatch polls it there now. Put the new address in the rules file."
    ]
    [health] = pipeline.store.source_health()
    assert health.url == feed_server.url("/old.xml")  # the rules file's, as written
    assert f"moved permanently to {feed_server.url('/new.xml')}" in source_line(health, NOW)


@pytest.mark.parametrize("status", [302, 303, 307])
async def test_temporary_redirects_are_followed_every_time(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient,
    status: int,
) -> None:  # fmt: skip
    feed_server.serve("/today.xml", rss([ITEM]))
    feed_server.redirect("/feed.xml", "/today.xml", status=status)
    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/feed.xml")})
    alerts = _alerts(pipeline)

    await _poll_all(pipeline)
    await _poll_all(pipeline)

    assert feed_server.hits("/feed.xml") == 2
    assert _moved_to(pipeline) is None and alerts == []


async def test_only_the_permanent_start_of_a_redirect_chain_counts(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient,
) -> None:  # fmt: skip
    feed_server.redirect("/a.xml", "/b.xml", status=301)
    feed_server.redirect("/b.xml", "/c.xml", status=302)
    feed_server.serve("/c.xml", rss([ITEM]))
    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/a.xml")})

    await _poll_all(pipeline)
    await _poll_all(pipeline)

    assert _moved_to(pipeline) == feed_server.url("/b.xml")
    assert [feed_server.hits(p) for p in ("/a.xml", "/b.xml", "/c.xml")] == [1, 2, 2]


async def test_a_new_address_in_the_rules_forgets_the_move(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient,
) -> None:  # fmt: skip
    feed_server.serve("/chosen.xml", rss([ITEM]))
    pipeline, _ = await _moved_once(tmp_path, db_url, feed_server, client, "/old.xml", "/new.xml")

    source = {"id": "news", "name": "news", "url": feed_server.url("/chosen.xml"), "interval": 300}
    pipeline.use_rules(load_rules(write_rules(tmp_path, [source])))
    await _poll_all(pipeline)

    assert _moved_to(pipeline) is None
    assert feed_server.hits("/chosen.xml") == 1 and feed_server.hits("/new.xml") == 1


async def test_a_moved_source_that_starts_failing_goes_back_to_the_rules_address(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient,
) -> None:  # fmt: skip
    pipeline, alerts = await _moved_once(
        tmp_path, db_url, feed_server, client, "/old.xml", "/new.xml"
    )

    feed_server.serve("/new.xml", "moved by mistake", status=500)
    await _poll_all(pipeline)  # 1 failure: still at the new address
    assert _moved_to(pipeline) == feed_server.url("/new.xml")
    await _poll_all(pipeline)  # 2 = the threshold: failing, back to the rules address
    assert _moved_to(pipeline) is None
    assert feed_server.hits("/old.xml") == 1

    feed_server.redirect("/old.xml", "/fixed.xml", status=302)  # the site's fix
    feed_server.serve("/fixed.xml", rss([ITEM]))
    await _poll_all(pipeline)

    assert feed_server.hits("/old.xml") == 2 and feed_server.hits("/fixed.xml") == 1
    assert _moved_to(pipeline) is None
    assert [
        next(k for k in ("moved permanently", "is failing", "recovered") if k in a) for a in alerts
    ] == ["moved permanently", "is failing", "recovered"]


async def test_a_feed_redirected_to_a_page_by_mistake_is_not_a_move(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient,
) -> None:  # fmt: skip
    feed_server.serve("/home.html", "<html><body>Welcome</body></html>", content_type="text/html")
    feed_server.redirect("/feed.xml", "/home.html", status=301)
    pipeline = _pipeline(tmp_path, db_url, client, {"news": feed_server.url("/feed.xml")})
    alerts = _alerts(pipeline)

    for _ in range(3):  # past the failure threshold (2)
        failed = await _poll_all(pipeline)
        assert "not a feed: got text/html" in str(failed["news"].value)
        assert _moved_to(pipeline) is None
    feed_server.serve("/feed.xml", rss([ITEM]))  # the site's fix
    fixed = await _poll_all(pipeline)

    assert len(fixed["news"].value.new_items) == 1  # type: ignore[union-attr]
    assert feed_server.hits("/feed.xml") == 4  # every poll at the rules file's address
    assert [a.split(" ")[-1] for a in alerts] == ["text/html", "recovered."]


async def test_a_move_back_to_the_rules_address_ends_the_move(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient,
) -> None:  # fmt: skip
    pipeline, alerts = await _moved_once(tmp_path, db_url, feed_server, client, "/a.xml", "/b.xml")

    feed_server.serve("/a.xml", rss([ITEM]))  # the site changes its mind
    feed_server.redirect("/b.xml", "/a.xml", status=301)
    await _poll_all(pipeline)
    await _poll_all(pipeline)

    assert _moved_to(pipeline) is None
    assert feed_server.hits("/b.xml") == 2 and feed_server.hits("/a.xml") == 3
    assert len(alerts) == 1  # the first move only


def test_a_move_found_for_an_address_the_rules_no_longer_have_is_dropped(db_url: str) -> None:
    check_a_move_found_for_an_address_the_rules_no_longer_have_is_dropped(db_url)


def check_a_move_found_for_an_address_the_rules_no_longer_have_is_dropped(url: str) -> None:
    store = open_store(url)
    old = SourceSpec("news", "News", "feed", "https://old.example/feed.xml", 300)
    store.sync_sources([old], lambda _: NOW)
    store.sync_sources([replace(old, url="https://chosen.example/feed.xml")], lambda _: NOW)

    # A poll of the old address, under way during the reload, finds a move.
    assert not store.record_move("news", old.url, "https://new.example/feed.xml")

    [health] = store.source_health()
    assert health.moved_to is None and health.url == "https://chosen.example/feed.xml"
    assert store.record_move("news", health.url, "https://new.example/feed.xml")
    assert not store.record_move("news", health.url, "https://new.example/feed.xml")  # known
    [state] = store.claim_due_sources(NOW)
    assert state.url == "https://new.example/feed.xml"
    store.engine.dispose()
