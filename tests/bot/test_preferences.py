"""/quiet and /mode digest through the real PTB and the emulator; held, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.holds import hold_until, parse_clock, parse_quiet
from metwatch.models import ChatPrefs
from tests.bot.test_commands import CHAT, NOW, Running, flag_story

LONDON = ZoneInfo("Europe/London")


def test_quiet_hours_span_midnight_in_local_time() -> None:
    prefs = ChatPrefs(quiet_start="22:00", quiet_end="07:00")
    # 15 Aug 2024 is BST (UTC+1): 22:30 local is 21:30 UTC.
    late = datetime(2024, 8, 15, 21, 30, tzinfo=UTC)
    assert hold_until(prefs, late, LONDON) == (
        datetime(2024, 8, 16, 7, 0, tzinfo=LONDON), "quiet hours",
    )  # fmt: skip
    early = datetime(2024, 8, 16, 5, 0, tzinfo=UTC)  # 06:00 local
    assert hold_until(prefs, early, LONDON) is not None
    assert hold_until(prefs, datetime(2024, 8, 16, 6, 0, tzinfo=UTC), LONDON) is None


def test_digest_is_due_once_a_day_after_its_hour() -> None:
    sent = datetime(2024, 8, 15, 7, 0, tzinfo=UTC)  # 08:00 BST
    prefs = ChatPrefs(mode="digest", digest_hour=8, last_digest_at=sent)
    held = hold_until(prefs, sent + timedelta(hours=5), LONDON)
    assert held == (datetime(2024, 8, 16, 8, 0, tzinfo=LONDON), "digest")
    assert hold_until(prefs, sent + timedelta(days=1, minutes=1), LONDON) is None


def test_parsing() -> None:
    assert parse_quiet("22:00-07:00") == ("22:00", "07:00")
    assert parse_quiet("22-7") == ("22:00", "07:00")
    assert parse_quiet("22:00") is None and parse_quiet("25:00-07:00") is None
    assert parse_clock("0730") == "07:30" and parse_clock("noon") is None


async def test_quiet_hours_hold_messages_until_they_end(bot: Running) -> None:
    await bot.say(CHAT, "/start")
    reply = await bot.say(CHAT, "/quiet 11:00-13:00")  # the test clock is 12:00 UTC
    assert "Quiet hours 11:00-13:00 (UTC)" in reply.text
    flag_story(bot.store, "q1", "Met inspection report", NOW)

    assert (await bot.deliverer.drain()).held == 1
    assert not bot.emu.messages(CHAT)[-1].text.startswith("Met inspection")
    bot.clock.now = NOW + timedelta(hours=1, minutes=1)
    assert (await bot.deliverer.drain()).sent == 1
    assert bot.emu.messages(CHAT)[-1].text.startswith("Met inspection report")


async def test_quiet_off_releases_held_messages(bot: Running) -> None:
    await bot.say(CHAT, "/start")
    await bot.say(CHAT, "/quiet 11:00-13:00")
    flag_story(bot.store, "q2", "Met inspection report", NOW)
    assert (await bot.deliverer.drain()).held == 1
    await bot.say(CHAT, "/quiet off")
    assert (await bot.deliverer.drain()).sent == 1


async def test_digest_mode_sends_one_message_a_day_grouped_by_finding(bot: Running) -> None:
    await bot.say(CHAT, "/start")
    reply = await bot.say(CHAT, "/mode digest 9")
    assert "one message a day at 09:00 (UTC)" in reply.text
    flag_story(bot.store, "d1", "Met graded inadequate", NOW)
    flag_story(bot.store, "d2", "Inspectors find <b>backlog</b>", NOW + timedelta(hours=1))

    assert (await bot.deliverer.drain()).held == 2
    before = len(bot.emu.messages(CHAT))
    bot.clock.now = NOW + timedelta(hours=21, minutes=5)  # 09:05 next day
    report = await bot.deliverer.drain()
    assert (report.sent, report.held) == (1, 0)
    digest = bot.emu.messages(CHAT)[-1]
    assert len(bot.emu.messages(CHAT)) == before + 1
    assert digest.text.startswith("metwatch digest")
    assert "2 stories" in digest.text
    assert (
        "Met graded inadequate" in digest.text and "Inspectors find <b>backlog</b>" in digest.text
    )
    assert bot.store.outbox_counts() == {"sent": 2}
    assert (await bot.deliverer.drain()).sent == 0  # nothing twice


async def test_mode_explains_itself(bot: Running) -> None:
    reply = await bot.say(CHAT, "/mode weekly")
    assert "/mode instant" in reply.text and "/mode digest 8" in reply.text
