"""The whole path: a served feed -> rules -> the real PTB -> a local Bot API emulator."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from metwatch.app import Service
from metwatch.logs import configure_logging
from metwatch.settings import load_settings
from tests.rules_for_tests import write_rules
from tests.support.bot_api import BotApiEmulator
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, rss

CHAT = 4242
WEATHER = FeedItem(
    title="Heatwave expected in London",
    link="https://news.example.com/weather",
    guid="weather-1",
    description="The Met Office says temperatures will rise this weekend.",
    published=datetime(2024, 8, 14, 9, 0, tzinfo=UTC),
)
REPORT = FeedItem(
    title="Met Police failing to manage sex offenders, inspectorate finds",
    link="https://news.example.com/met-report?utm_source=rss",
    guid="report-1",
    description=(
        "<p>The Metropolitan Police is failing to manage sex offenders, the police "
        "inspectorate has found.</p><p>Too many visits to registered sex offenders were "
        "announced in advance, inspectors said.</p>"
    ),
    published=datetime(2024, 8, 15, 7, 0, tzinfo=UTC),
)


async def _until(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_subscriber_gets_exactly_one_alert(
    tmp_path: Path,
    feed_server: FeedServer,
    bot_api: BotApiEmulator,
    db_url: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # DEBUG: httpx and PTB log every Bot API URL, and each one contains the token.
    configure_logging("DEBUG", [bot_api.token])
    feed_server.serve("/london.xml", rss([WEATHER]))
    rules_path = write_rules(
        tmp_path,
        [{"id": "local-news", "name": "Local News", "url": feed_server.url("/london.xml"),
          "interval": 5}],
    )  # fmt: skip
    settings = load_settings(
        telegram_token=bot_api.token, telegram_base_url=bot_api.base_url,
        database_url=db_url, rules_path=rules_path, tick_seconds=0.2, deliver_seconds=0.2,
        health_port=0,
    )  # fmt: skip
    service = Service(settings)
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    try:
        bot_api.add_message(CHAT, "/start")
        welcome = await asyncio.to_thread(bot_api.wait_for_messages, 1, CHAT)
        assert "Subscribed" in welcome[0].text

        polls_before = feed_server.hits("/london.xml")
        feed_server.serve("/london.xml", rss([REPORT, WEATHER]))
        alerts = await asyncio.to_thread(bot_api.wait_for_messages, 2, CHAT)
        alert = alerts[1]
        assert "Sex-offender visits announced in advance" in alert.text
        assert (
            "Too many visits to registered sex offenders were announced in advance" in alert.text
        )
        assert 'href="https://news.example.com/met-report"' in alert.html
        assert "Local News" in alert.text
        assert "Heatwave" not in "".join(m.text for m in alerts)

        # A later poll of the same feed sends nothing new.
        seen = feed_server.hits("/london.xml")
        assert seen > polls_before
        await _until(lambda: feed_server.hits("/london.xml") > seen)
        await asyncio.sleep(0.5)
        assert len(bot_api.messages(CHAT)) == 2

        assert service.health_server is not None
        base = f"http://127.0.0.1:{service.health_server.server_port}"
        async with httpx.AsyncClient() as client:
            health = await client.get(f"{base}/healthz")
            metrics = (await client.get(f"{base}/metrics")).text
        assert health.status_code == 200
        assert health.json() == {
            "status": "ok", "scheduler": True, "database": True, "recent_poll": True,
        }  # fmt: skip
        assert 'metwatch_matches_total{finding="announced-visits"} 1.0' in metrics
        assert 'metwatch_deliveries_total{outcome="sent"} 1.0' in metrics
        assert 'metwatch_items_total{source="local-news"} 2.0' in metrics
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        logging.getLogger().handlers.clear()

    logs = capfd.readouterr().err
    assert "bot<redacted>/sendMessage" in logs or "<redacted>" in logs
    assert bot_api.token not in logs
    database = Path(db_url.removeprefix("sqlite:///"))
    for path in database.parent.glob("metwatch.db*"):
        assert bot_api.token.encode() not in path.read_bytes()
