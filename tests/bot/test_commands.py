"""Subscriber commands and follow buttons, end to end: the real PTB, the Bot API emulator,
a real SQLite file. Each test sends updates through the emulator and checks what the bot
answered and what the store then holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from bot.admin import Reload
from bot.app import build_application
from bot.deliver import Deliverer
from bot.handlers import BotCommands
from bot.notifier import TelegramNotifier
from classifiers.rules import RuleSet
from metwatch.models import Classified, Evidence, Item, Match
from metwatch.store import SqlStore, open_store
from tests.support.bot_api import BotApiEmulator, SentMessage

CHAT = 4242
OTHER = 5151
GROUP = -100777
CHANNEL = -100555
MEMBER = 7007
ADMIN = 9001
NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)
TOPIC = "met-inspection"
FINDING = "announced-visits"


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Running:
    """A running bot: what tests drive and inspect."""

    emu: BotApiEmulator
    store: SqlStore
    commands: BotCommands
    clock: Clock
    deliverer: Deliverer

    async def say(self, chat: int, text: str, *, expect: int = 1, **kwargs: object) -> SentMessage:
        """Send ``text`` to the bot from ``chat``; returns its ``expect``-th reply there."""
        before = len(self.emu.messages(chat))
        self.emu.add_message(chat, text, **kwargs)  # type: ignore[arg-type]
        found = await asyncio.to_thread(self.emu.wait_for_messages, before + expect, chat)
        return found[before + expect - 1]

    async def press(self, chat: int, data: str, **kwargs: object) -> None:
        """Press a button in ``chat`` and wait for the bot to answer the press."""
        before = len(self.emu.callback_answers)
        self.emu.add_callback_query(chat, data, **kwargs)  # type: ignore[arg-type]
        await until(lambda: len(self.emu.callback_answers) > before)


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_bot(
    emu: BotApiEmulator, db_url: str, rules: RuleSet, *, reload: Reload | None = None
) -> AsyncIterator[Running]:
    """The Application with metwatch's handlers, polling the emulator, as ``metwatch run``."""
    store, clock = open_store(db_url), Clock()
    commands = BotCommands(store, lambda: rules, admin_ids=[ADMIN], clock=clock, reload=reload)
    app = build_application(emu.token, emu.base_url)
    commands.install(app)
    deliverer = Deliverer(store, TelegramNotifier(app.bot), clock=clock)
    async with app:
        await commands.register_commands(app)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=2, poll_interval=0)
        try:
            yield Running(emu, store, commands, clock, deliverer)
        finally:
            await app.updater.stop()
            await app.stop()
            store.engine.dispose()
    assert emu.errors == []


@pytest.fixture
async def bot(bot_api: BotApiEmulator, db_url: str, rules: RuleSet) -> AsyncIterator[Running]:
    async with running_bot(bot_api, db_url, rules) as running:
        yield running


def buttons(message: SentMessage) -> dict[str, str]:
    """callback_data -> label of the message's inline keyboard."""
    assert message.reply_markup is not None
    rows = message.reply_markup["inline_keyboard"]
    return {b["callback_data"]: b["text"] for row in rows for b in row}


def current(emu: BotApiEmulator, chat: int, message_id: int) -> SentMessage:
    return next(m for m in emu.messages(chat) if m.message_id == message_id)


def flag_story(store: SqlStore, item_id: str, title: str, when: datetime, body: str = "") -> int:
    item = Item(
        item_id, "src", "Evening <Outlet>", f"https://news.example/{item_id}", title,
        "", body or "Visits were announced in advance.", when, item_id,
    )  # fmt: skip
    match = Match(FINDING, TOPIC, "Sex-offender visits announced in advance", 1.0,
                  (Evidence("Visits were announced in advance.", 0, 10),))  # fmt: skip
    store.add_items([item], when)
    return store.record_flagged(Classified(item, (match,)), None, when)


# -- /start, buttons ---------------------------------------------------------------------


async def test_start_subscribes_to_the_topic_and_shows_the_buttons(
    bot: Running, rules: RuleSet
) -> None:
    welcome = await bot.say(CHAT, "/start")
    assert welcome.text.startswith("Subscribed")
    assert len(welcome.text.splitlines()) == 3
    labels = buttons(welcome)
    assert set(labels) == {f"f:{i}" for i in rules.follow_targets}
    assert labels[f"f:{TOPIC}"].startswith("✓")
    assert labels[f"f:{FINDING}"].startswith("○")
    assert bot.store.is_active(CHAT)
    assert bot.store.follows(CHAT) == {TOPIC}


async def test_a_button_toggles_the_follow_and_edits_the_buttons_in_place(bot: Running) -> None:
    listing = await bot.say(CHAT, "/findings")
    assert "Sex-offender visits announced in advance" in listing.text

    await bot.press(CHAT, f"f:{FINDING}")
    assert bot.store.follows(CHAT) == {FINDING}
    assert (
        bot.emu.callback_answers[-1].text == "Following: Sex-offender visits announced in advance"
    )
    assert buttons(current(bot.emu, CHAT, listing.message_id))[f"f:{FINDING}"].startswith("✓")

    await bot.press(CHAT, f"f:{TOPIC}")
    await bot.press(CHAT, f"f:{FINDING}")
    assert bot.store.follows(CHAT) == {TOPIC}
    answer = bot.emu.callback_answers[-1]
    assert answer.text == (
        "Unfollowed: Sex-offender visits announced in advance (still sent through Met inspections)"
    )
    edited = buttons(current(bot.emu, CHAT, listing.message_id))
    assert edited[f"f:{FINDING}"].startswith("○") and edited[f"f:{TOPIC}"].startswith("✓")
    assert len(bot.emu.messages(CHAT)) == 1  # edited, never re-sent


FORGED = ["f:no-such-finding", "f:", "x:announced-visits", f"f:{FINDING}:{OTHER}", "f:../x"]


async def test_a_forged_button_is_refused_and_changes_nothing(bot: Running) -> None:
    await bot.say(CHAT, "/start")
    for data in FORGED:
        await bot.press(CHAT, data)
        answer = bot.emu.callback_answers[-1]
        assert answer.show_alert and answer.text is not None and "not valid" in answer.text, data
    assert bot.store.follows(CHAT) == {TOPIC}
    assert bot.store.follows(OTHER) == set()
    assert bot.emu.calls("editMessageReplyMarkup") == []


async def test_a_button_acts_only_on_the_chat_it_was_pressed_in(bot: Running) -> None:
    await bot.say(CHAT, "/start")
    await bot.say(OTHER, "/findings")
    await bot.press(OTHER, f"f:{FINDING}")
    assert bot.store.follows(OTHER) == {FINDING}
    assert bot.store.follows(CHAT) == {TOPIC}


# -- /follow, /unfollow ------------------------------------------------------------------


async def test_follow_an_unknown_id_lists_the_valid_ids(bot: Running) -> None:
    reply = await bot.say(CHAT, "/follow <b>nope</b>")
    assert "I don't know <b>nope</b>" in reply.text
    assert FINDING in reply.text and TOPIC in reply.text
    reply = await bot.say(CHAT, "/follow")
    assert "/follow ID" in reply.text
    assert bot.store.follows(CHAT) == set()


async def test_follow_and_unfollow_by_id(bot: Running) -> None:
    reply = await bot.say(CHAT, f"/follow {FINDING}")
    assert reply.text == "Following Sex-offender visits announced in advance."
    assert bot.store.follows(CHAT) == {FINDING} and bot.store.is_active(CHAT)

    reply = await bot.say(CHAT, f"/unfollow {FINDING}")
    assert reply.text.startswith("No longer following")
    assert bot.store.follows(CHAT) == set()
    reply = await bot.say(CHAT, f"/unfollow {FINDING}")
    assert reply.text.startswith("You were not following")

    await bot.say(CHAT, "/start")
    reply = await bot.say(CHAT, f"/unfollow {FINDING}")
    assert "You still get its stories through Met inspections" in reply.text


# -- /latest, /search --------------------------------------------------------------------


async def test_latest_shows_recent_stories_escaped(bot: Running) -> None:
    empty = await bot.say(CHAT, "/latest")
    assert empty.text.startswith("No stories yet")
    flag_story(bot.store, "a1", "Met <b>report</b> & more", NOW)
    flag_story(bot.store, "a2", "Inspectors: Met visits announced", NOW + timedelta(hours=1))
    reply = await bot.say(CHAT, "/latest")
    assert "Met <b>report</b> & more" in reply.text  # shown literally, not as bold
    assert "Evening <Outlet>" in reply.text
    assert "Findings: Sex-offender visits announced in advance" in reply.text
    assert reply.text.index("Inspectors: Met visits") < reply.text.index("Met <b>report</b>")
    assert 'href="https://news.example/a1"' in reply.html


async def test_search_needs_every_word_any_case_newest_first(bot: Running) -> None:
    flag_story(bot.store, "old", "Met inspection published", NOW, "Sex OFFENDERS visited.")
    flag_story(bot.store, "new", "Offenders report", NOW + timedelta(days=1), "The MET again.")
    flag_story(bot.store, "pct", "A 60% rate", NOW, "No further action in 60% of cases.")

    reply = await bot.say(CHAT, "/search met offenders")
    lines = [line for line in reply.text.splitlines() if line.startswith("•")]
    assert [line.split(" — ")[0] for line in lines] == [
        "• Offenders report",
        "• Met inspection published",
    ]
    reply = await bot.say(CHAT, "/search 60%")
    assert "A 60% rate" in reply.text and "Offenders" not in reply.text
    reply = await bot.say(CHAT, "/search 6_%")
    assert reply.text == "Nothing stored mentions 6_%."
    reply = await bot.say(CHAT, "/search")
    assert "/search words" in reply.text


# -- /pause, /resume ---------------------------------------------------------------------


async def test_a_paused_chat_gets_nothing_until_it_resumes(bot: Running) -> None:
    await bot.say(CHAT, "/start")
    reply = await bot.say(CHAT, "/pause 24h")
    assert reply.text.startswith("Paused until 16 Aug 2024 12:00 (UTC)")
    flag_story(bot.store, "p1", "Met inspection report", NOW)

    report = await bot.deliverer.drain()
    assert (report.sent, report.held) == (0, 1)
    assert len(bot.emu.messages(CHAT)) == 2  # welcome and pause reply only
    assert await bot.deliverer.drain() == type(report)()  # held, not retried in a loop

    await bot.say(CHAT, "/resume")
    report = await bot.deliverer.drain()
    assert report.sent == 1
    alert = bot.emu.messages(CHAT)[-1]
    assert alert.text.startswith("Met inspection report")


async def test_a_pause_ends_by_itself(bot: Running) -> None:
    await bot.say(CHAT, "/start")
    await bot.say(CHAT, "/pause 30m")
    flag_story(bot.store, "p2", "Met inspection report", NOW)
    assert (await bot.deliverer.drain()).sent == 0
    bot.clock.now = NOW + timedelta(minutes=31)
    assert (await bot.deliverer.drain()).sent == 1


async def test_pause_explains_what_it_needs(bot: Running) -> None:
    for argument in ["", "soon", "0m", "31d", "5w"]:
        reply = await bot.say(CHAT, f"/pause {argument}".strip())
        assert "/pause 24h" in reply.text, argument
    assert bot.store.get_meta(f"paused_until:{CHAT}") is None


# -- groups, channels, removal -----------------------------------------------------------


async def test_in_a_group_only_admins_change_subscriptions(bot: Running) -> None:
    refused = await bot.say(GROUP, "/start", chat_type="supergroup", user_id=MEMBER)
    assert refused.text.startswith("Sorry, only this chat's administrators")
    assert not bot.store.is_active(GROUP)
    listing = await bot.say(GROUP, "/findings", chat_type="supergroup", user_id=MEMBER)
    await bot.press(GROUP, f"f:{FINDING}", user_id=MEMBER)
    assert bot.emu.callback_answers[-1].show_alert
    assert bot.store.follows(GROUP) == set()

    bot.emu.set_member_status(GROUP, MEMBER, "administrator")
    welcome = await bot.say(GROUP, "/start@metwatch_test_bot", chat_type="supergroup",
                            user_id=MEMBER)  # fmt: skip
    assert welcome.text.startswith("Subscribed")
    await bot.press(GROUP, f"f:{FINDING}", user_id=MEMBER, message_id=listing.message_id)
    assert bot.store.follows(GROUP) == {TOPIC, FINDING}
    assert bot.store.is_active(GROUP)


async def test_a_channel_post_subscribes_the_channel(bot: Running) -> None:
    bot.emu.add_channel_post(CHANNEL, "/start", title="Met watchers")
    welcome = (await asyncio.to_thread(bot.emu.wait_for_messages, 1, CHANNEL))[0]
    assert welcome.text.startswith("Subscribed")
    assert bot.store.is_active(CHANNEL)
    assert bot.store.follows(CHANNEL) == {TOPIC}


@pytest.mark.parametrize(("chat", "kind"), [(GROUP, "supergroup"), (CHAT, "private")])
async def test_removing_or_blocking_the_bot_unsubscribes(
    bot: Running, chat: int, kind: str
) -> None:
    if kind == "private":
        await bot.say(chat, "/start")
    else:
        bot.emu.set_member_status(chat, MEMBER, "creator")
        await bot.say(chat, "/start", chat_type=kind, user_id=MEMBER)
    assert bot.store.is_active(chat)
    bot.emu.add_my_chat_member(chat, kind, "kicked")
    await until(lambda: not bot.store.is_active(chat))
