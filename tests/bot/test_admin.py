"""Admin commands and the command menus, end to end: the real PTB, the Bot API emulator,
a real SQLite file. Admins are the chat ids given at start-up (here ``ADMIN``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from telegram import BotCommandScopeChat

from bot.handlers import SUBSCRIBER_USAGE
from classifiers.rules import RuleSet
from metwatch.models import SourceSpec
from metwatch.store.subscribers import pause
from tests.bot.test_commands import ADMIN, CHAT, NOW, OTHER, Running, running_bot
from tests.support.bot_api import BotApiEmulator

ADMIN_ONLY = ["status", "sources", "broadcast", "reload"]
SUBSCRIBER = [name for name, _, _ in SUBSCRIBER_USAGE]


@pytest.fixture
async def bot(bot_api: BotApiEmulator, db_url: str, rules: RuleSet) -> AsyncIterator[Running]:
    async with running_bot(bot_api, db_url, rules) as running:
        yield running


def names(commands: list[dict[str, str]]) -> list[str]:
    return [c["command"] for c in commands]


async def test_admin_commands_are_shown_only_in_the_admins_chats(bot: Running) -> None:
    assert names(bot.emu.commands()) == SUBSCRIBER
    assert names(bot.emu.commands(BotCommandScopeChat(ADMIN))) == SUBSCRIBER + ADMIN_ONLY
    assert bot.emu.commands(BotCommandScopeChat(CHAT)) == []


@pytest.mark.parametrize("command", ADMIN_ONLY)
async def test_others_are_refused_politely(bot: Running, command: str) -> None:
    await bot.say(ADMIN, "/start")
    reply = await bot.say(CHAT, f"/{command} hello")
    assert reply.text == f"Sorry, /{command} is for the bot's administrators."
    assert len(bot.emu.messages(ADMIN)) == 1  # nothing broadcast


async def test_help_shows_admin_commands_to_admins_only(bot: Running) -> None:
    everyone = await bot.say(CHAT, "/help")
    assert "/search WORDS" in everyone.text and "/status" not in everyone.text
    admin = await bot.say(ADMIN, "/help")
    assert all(f"/{c}" in admin.text for c in ADMIN_ONLY)


async def test_status_and_sources_show_source_health_escaped(bot: Running, rules: RuleSet) -> None:
    bot.store.sync_sources(rules.sources[:2], lambda spec: NOW)
    failing = rules.sources[0].id
    for _ in range(5):
        bot.store.record_failure(
            failing, now=NOW, next_poll=NOW + timedelta(minutes=5),
            error="HTTP 503 <Service Unavailable> & co", threshold=5,
        )  # fmt: skip

    status = await bot.say(ADMIN, "/status")
    assert f"Rules {rules.version}" in status.text
    sources = await bot.say(ADMIN, "/sources")
    assert "(2, 1 failing)" in sources.text
    assert f"{rules.sources[0].name} ({failing}): FAILING" in sources.text
    assert "last error: HTTP 503 <Service Unavailable> & co" in sources.text
    assert f"{rules.sources[1].id}): ok, last success never" in sources.text


async def test_many_sources_come_in_several_messages_within_telegram_s_limit(
    bot: Running,
) -> None:
    name = "Outlet with a long name " * 8
    specs = [
        SourceSpec(f"source-{n:02}", f"{name}{n}", "feed", f"https://n{n}.example.com/rss", 900)
        for n in range(60)
    ]
    bot.store.sync_sources(specs, lambda spec: NOW)
    for spec in specs:
        bot.store.record_failure(spec.id, now=NOW, next_poll=NOW, threshold=5,
                                 error="not a feed: got text/html; " + "<x> " * 100)  # fmt: skip

    for command in ("/sources", "/status"):
        before = len(bot.emu.messages(ADMIN))  # the bot's messages in the chat
        await bot.say(ADMIN, command, expect=3)
        await asyncio.sleep(0.2)  # for any further parts
        parts = [m.text for m in bot.emu.messages(ADMIN)[before:]]
        assert len(parts) >= 3, command  # 60 lines of ~400 characters: no single message
        text = "\n".join(parts)
        assert [text.count(f"(source-{n:02})") for n in range(60)] == [1] * 60, command
        assert all(len(p) <= 4096 for p in parts)


async def test_broadcast_reaches_active_unpaused_chats_and_counts(bot: Running) -> None:
    for chat in (CHAT, OTHER, 6161, 7171):
        await bot.say(chat, "/start")
    await bot.say(7171, "/stop")
    pause(bot.store, OTHER, NOW + timedelta(hours=1))
    bot.emu.block_chat(6161)

    reply = await bot.say(ADMIN, "/broadcast Maintenance <tonight> & tomorrow\nat 22:00")
    assert reply.text == (
        "Broadcast sent to 1 chat(s); skipped 1 paused; 1 had removed the bot "
        "(unsubscribed); 0 failed."
    )
    assert bot.emu.messages(CHAT)[-1].text == "Maintenance <tonight> & tomorrow\nat 22:00"
    assert len(bot.emu.messages(OTHER)) == 1 and len(bot.emu.messages(7171)) == 2
    assert not bot.store.is_active(6161)

    usage = await bot.say(ADMIN, "/broadcast")
    assert "/broadcast your text" in usage.text


async def test_reload_without_a_reloader_says_so(bot: Running) -> None:
    reply = await bot.say(ADMIN, "/reload")
    assert reply.text.startswith("Hot reload is not configured")


async def test_reload_shows_the_summary_or_the_failure(
    bot_api: BotApiEmulator, db_url: str, rules: RuleSet
) -> None:
    outcomes: list[str | Exception] = [
        "rules 1a2b3c <ok>: 10 findings, 10 sources",
        ValueError("bad <yaml>"),
    ]

    async def reload() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async with running_bot(bot_api, db_url, rules, reload=reload) as running:
        reply = await running.say(ADMIN, "/reload")
        assert reply.text == "rules 1a2b3c <ok>: 10 findings, 10 sources"
        reply = await running.say(ADMIN, "/reload")
        assert reply.text == "Reload failed: bad <yaml>"
