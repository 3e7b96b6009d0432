"""Coverage edited at the source, from the feed to the chats: a story first
flagged on its topic alone, then written up with findings, reaches the followers
of those findings once, and is edited in place for the chats that had it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select
from telegram import Bot

from bot.deliver import Deliverer
from bot.notifier import TelegramNotifier
from classifiers.rules import RuleSet, load_rules
from metwatch.models import RawEntry, SourceSpec
from metwatch.pipeline import Pipeline
from metwatch.store import SqlStore, open_store
from metwatch.store.tables import DeliveryRow, MatchRow
from tests.rules_for_tests import write_rules
from tests.support.bot_api import BotApiEmulator
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, rss
from watchers.fetch import Fetcher

NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)
TOPIC_CHAT, FINDING_CHAT, OTHER_CHAT = 101, 102, 103
#: On the topic (the Met and the inspectorate), but no tracked finding yet.
STUB = FeedItem(
    title="Met Police braced for inspectors' report", link="https://news.example.com/met",
    guid="met-report", description="The Metropolitan Police will learn today how HMICFRS "
    "inspectors have graded it. More to follow.",
)  # fmt: skip
WRITTEN_UP = replace(STUB, description=(
    "<p>Inspectors found that visits to registered sex offenders were announced in advance "
    "by the Metropolitan Police, giving offenders time to hide evidence.</p>"
))  # fmt: skip
#: A second finding, added by a later edit.
WRITTEN_UP_MORE = replace(WRITTEN_UP, description=f"{WRITTEN_UP.description}" + (
    "<p>One high-risk offender had not been visited since 2017, the report said.</p>"
))  # fmt: skip


@pytest.fixture
async def bot(bot_api: BotApiEmulator) -> AsyncIterator[Bot]:
    async with Bot(bot_api.token, base_url=bot_api.base_url) as b:
        yield b


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2) as c:
        yield c


def _findings(pipeline: Pipeline, item_id: str) -> set[str]:
    with pipeline.store.engine.connect() as c:
        rows = c.execute(select(MatchRow.finding_id).where(col(MatchRow.item_id) == item_id))
        return set(rows.scalars())


async def test_a_topic_only_story_written_up_later_reaches_the_findings_followers_once(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient,
    bot_api: BotApiEmulator, bot: Bot,
) -> None:  # fmt: skip
    source = {"id": "feed", "name": "Feed", "url": feed_server.url("/feed.xml"), "interval": 300}
    store = open_store(db_url)
    pipeline = Pipeline(
        store, Fetcher(client, max_bytes=1_000_000), load_rules(write_rules(tmp_path, [source])),
        clock=lambda: NOW,
    )  # fmt: skip
    pipeline.sync_sources()
    store.subscribe(TOPIC_CHAT, ["met-inspection"], NOW)
    store.subscribe(FINDING_CHAT, ["announced-visits"], NOW)
    store.subscribe(OTHER_CHAT, ["iic-nfa-rate"], NOW)
    deliverer = Deliverer(store, TelegramNotifier(bot), clock=lambda: NOW)

    async def poll(entry: FeedItem, etag: str) -> None:
        feed_server.serve("/feed.xml", rss([entry]), etag=etag)
        [result] = await pipeline.tick(everything=True)
        assert result.value is not None and not isinstance(result.value, Exception)
        await deliverer.drain()

    await poll(STUB, '"v1"')
    [item] = store.iter_items()
    assert _findings(pipeline, item.id) == {"met-inspection"}  # topic only
    assert len(bot_api.messages(TOPIC_CHAT)) == 1
    assert bot_api.messages(FINDING_CHAT) == [] and bot_api.messages(OTHER_CHAT) == []

    # The same entry, written up: it states a finding now.
    await poll(WRITTEN_UP, '"v2"')
    assert _findings(pipeline, item.id) == {"met-inspection", "announced-visits"}
    [for_finding] = bot_api.messages(FINDING_CHAT)
    assert "announced in advance" in for_finding.text
    [for_topic] = bot_api.messages(TOPIC_CHAT)  # the one message, edited
    assert len(for_topic.edits) == 1 and "announced in advance" in for_topic.text
    assert bot_api.messages(OTHER_CHAT) == []
    [story] = store.recent_stories(10)
    assert [link.url for link in story.links] == [STUB.link]

    # A second finding: the story is edited for both chats, and sent to no one again.
    await poll(WRITTEN_UP_MORE, '"v3"')
    assert "unvisited-since-2017" in _findings(pipeline, item.id)
    assert [len(m.edits) for m in bot_api.messages(TOPIC_CHAT)] == [2]
    assert [len(m.edits) for m in bot_api.messages(FINDING_CHAT)] == [1]

    # An edit that states nothing new (a new headline) owes no one anything.
    revision = store.recent_stories(10)[0].revision
    await poll(replace(WRITTEN_UP_MORE, title="Met warned sex offenders before visits"), '"v4"')
    assert store.recent_stories(10)[0].revision == revision
    assert [len(m.edits) for m in bot_api.messages(TOPIC_CHAT)] == [2]
    assert [len(m.edits) for m in bot_api.messages(FINDING_CHAT)] == [1]
    assert bot_api.messages(OTHER_CHAT) == []
    [stored] = store.iter_items()
    assert stored.title == "Met warned sex offenders before visits"


SPEC = SourceSpec("feed", "Feed", "feed", "file:", 300)
TOPIC_ONLY_TEXT = STUB.description or ""
FINDING_TEXT = "Inspectors found that visits to registered sex offenders were announced in " \
    "advance by the Metropolitan Police, giving offenders time to hide evidence."  # fmt: skip


def _owed(store: SqlStore) -> list[tuple[int, int, int]]:
    with store.engine.connect() as c:
        rows = c.execute(
            select(DeliveryRow.chat_id, DeliveryRow.story_id, DeliveryRow.wanted_revision)
        )
        return sorted((chat, story, revision) for chat, story, revision in rows)


def test_an_edit_only_on_the_topic_of_a_finding_it_stated_tells_no_one(
    db_url: str, rules: RuleSet
) -> None:
    store = open_store(db_url)
    store.subscribe(TOPIC_CHAT, ["met-inspection"], NOW)
    pipeline = Pipeline(store, None, rules, clock=lambda: NOW)  # type: ignore[arg-type]
    first = pipeline.ingest(SPEC, [RawEntry("g", STUB.link, STUB.title, "", FINDING_TEXT, NOW)])
    assert [m.finding_id for c in first.flagged for m in c.matches] == ["announced-visits"]
    owed = _owed(store)

    # Cut back to a line on the topic: a topic-only match, in a topic it has a finding in.
    edit = RawEntry("g", STUB.link, STUB.title, "", TOPIC_ONLY_TEXT, NOW)
    assert pipeline.ingest(SPEC, [edit]).flagged == ()
    assert _owed(store) == owed
    [item] = store.iter_items()
    assert item.body == TOPIC_ONLY_TEXT  # the text is the source's


def test_findings_an_edit_adds_to_a_story_past_the_window_are_kept_and_tell_no_one(
    db_url: str, rules: RuleSet
) -> None:
    """As an item that old would start a new story, not join one: no old story is
    sent, even to a chat that follows its topic since."""
    store = open_store(db_url)
    clock = [NOW]
    pipeline = Pipeline(store, None, rules, clock=lambda: clock[0])  # type: ignore[arg-type]
    stub = RawEntry("g", STUB.link, STUB.title, "", TOPIC_ONLY_TEXT, NOW)
    assert pipeline.ingest(SPEC, [stub]).flagged
    clock[0] = NOW + timedelta(days=90)
    store.subscribe(TOPIC_CHAT, ["met-inspection"], clock[0])
    store.subscribe(FINDING_CHAT, ["announced-visits"], clock[0])

    outcome = pipeline.ingest(SPEC, [replace(stub, content=FINDING_TEXT)])

    assert [m.finding_id for c in outcome.flagged for m in c.matches] == ["announced-visits"]
    [item] = store.iter_items()
    assert _findings(pipeline, item.id) == {"met-inspection", "announced-visits"}
    assert _owed(store) == []
    assert store.recent_stories(10)[0].revision == 1
