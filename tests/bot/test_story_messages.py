"""Story messages through the real PTB and the local Bot API emulator: send, edit,
fall back to a reply when the message can no longer be edited, fit the length limit."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from telegram import Bot

from bot.deliver import Deliverer
from bot.notifier import TelegramNotifier
from bot.render import TELEGRAM_LIMIT, render_story
from classifiers.rules import RuleSet
from metwatch.models import Evidence, Match, Story, StoryLink
from metwatch.pipeline import Pipeline
from metwatch.store import SqlStore, open_store
from tests.support.bot_api import BotApiEmulator, parse_html
from tests.support.seeds import META, SEEDS, ingest_seed

CHAT = 777
NOW = datetime(2024, 8, 15, 18, 0, tzinfo=UTC)


@pytest.fixture
async def bot(bot_api: BotApiEmulator) -> AsyncIterator[Bot]:
    async with Bot(bot_api.token, base_url=bot_api.base_url) as b:
        yield b


def _pipeline(store: SqlStore, rules: RuleSet) -> Pipeline:
    return Pipeline(store, None, rules, clock=lambda: NOW)  # type: ignore[arg-type]


def _subscribed(db_url: str, rules: RuleSet, bot: Bot) -> tuple[SqlStore, Pipeline, Deliverer]:
    """A store with CHAT following the topic, a pipeline and a deliverer over ``bot``."""
    store = open_store(db_url)
    store.subscribe(CHAT, ["met-inspection"], NOW)
    return (
        store,
        _pipeline(store, rules),
        Deliverer(store, TelegramNotifier(bot), clock=lambda: NOW),
    )


async def test_later_coverage_edits_the_one_message(
    bot_api: BotApiEmulator, bot: Bot, db_url: str, rules: RuleSet
) -> None:
    store, pipeline, deliverer = _subscribed(db_url, rules, bot)

    for n in range(5):
        ingest_seed(pipeline, n)
        await deliverer.drain()

    messages = bot_api.messages(CHAT)
    assert len(messages) == 1 and len(messages[0].edits) == 4
    final = messages[0]
    assert final.text.count("outlet") == 0  # outlets are link texts, URLs are entities
    hrefs = {e.get("url") for e in final.entities if e["type"] == "text_link"}
    assert {f"https://outlet{n}.example/report" for n in range(5)} <= hrefs
    assert "Also reported by:" in final.text
    assert "No crime prevention strategy" in final.text  # a finding only seed 004 states
    assert len(store.recent_stories(10)) == 1


async def test_uneditable_message_gets_a_short_reply(
    bot_api: BotApiEmulator, bot: Bot, db_url: str, rules: RuleSet
) -> None:
    store, pipeline, deliverer = _subscribed(db_url, rules, bot)
    ingest_seed(pipeline, 1)
    await deliverer.drain()
    first = bot_api.messages(CHAT)[0]
    bot_api.make_uneditable(CHAT, first.message_id)

    ingest_seed(pipeline, 2)
    report = await deliverer.drain()

    messages = bot_api.messages(CHAT)
    assert len(messages) == 2 and report.edited == 1
    assert messages[1].reply_to_message_id == first.message_id
    assert first.edits == []
    # Nothing is owed any more: the next drain sends nothing.
    assert (await deliverer.drain()).sent == 0
    assert len(bot_api.messages(CHAT)) == 2


def _huge_story() -> Story:
    evidence = (Evidence("A <b>sentence</b> & more. " * 40, 0, 10),)
    matches = tuple(
        Match(f"f{n}", "met-inspection", f"Finding {n} <x>", 1.0, evidence) for n in range(12)
    )
    links = tuple(
        StoryLink(f"i{n}", f"Outlet {n} & Co", f"Title {n}", f"https://o{n}.example/a?b=1&c=2",
                  NOW - timedelta(hours=n))
        for n in range(60)
    )  # fmt: skip
    return Story(1, "Headline <script>alert(1)</script>", ("Summary. " * 80,), links, matches, NOW)


def test_long_story_fits_and_parses() -> None:
    html = render_story(_huge_story())
    text, _entities = parse_html(html)  # raises on a tag cut in half
    assert len(text) <= TELEGRAM_LIMIT
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert re.search(r"\+\d+ more", text)  # links collapsed to "+N more"


def test_story_from_the_store_round_trips(db_url: str, rules: RuleSet, tmp_path: Path) -> None:
    store = open_store(db_url)
    pipeline = _pipeline(store, rules)
    ingest_seed(pipeline, 4)
    story = store.recent_stories(1)[0]
    assert story.links[0].outlet == "Daily Mail (its image URLs)"
    assert 2 <= len(story.summary) <= 3
    source = " ".join((SEEDS / META[4]["file"]).read_text().split())
    assert all(s in source for s in story.summary)


async def test_a_late_subscriber_gets_the_story_as_it_stands(
    bot_api: BotApiEmulator, bot: Bot, db_url: str, rules: RuleSet
) -> None:
    store, pipeline, deliverer = _subscribed(db_url, rules, bot)
    ingest_seed(pipeline, 1)
    await deliverer.drain()

    late = CHAT + 1
    store.subscribe(late, ["met-inspection"], NOW)
    ingest_seed(pipeline, 2)
    await deliverer.drain()

    assert len(bot_api.messages(CHAT)) == 1 and len(bot_api.messages(CHAT)[0].edits) == 1
    latest = bot_api.messages(late)
    assert len(latest) == 1  # the whole story in one new message, not an edit
    assert latest[0].text == bot_api.messages(CHAT)[0].text
