"""SIGTERM in the middle of a fan-out: exit 0 within 10 s, and a restart finishes the job.

Same set-up as ``tests/test_crash_restart.py`` (its ``Harness``): the real ``metwatch run``
as a subprocess, 200 pre-subscribed chats, one flagged item, an emulator that answers each
sendMessage late so the fan-out takes several seconds. SIGTERM arrives once 40 chats have
their message. A graceful stop must

- exit with code 0 within 10 s (``docker stop`` sends SIGKILL after 10 s), and
- leave the outbox consistent: a restart delivers every remaining chat, and no chat gets
  the story twice beyond the sends in flight when the signal came (the bound explained in
  ``tests/test_crash_restart.py``).

A *graceful* stop does better than a kill: it lets the sends under way finish and marks
them, so it repeats nothing at all (``test_sigterm_lets_sends_under_way_finish``). A poll
the stop cuts short must lose nothing either: not the item it was fetching the article
page of, and not 10 minutes of polling of its source
(``test_sigterm_during_the_full_text_fetch_loses_no_alert``): its claim is handed back.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.test_crash_restart import (
    CHATS,
    Harness,
    _chat_calls,
    _report,
    article_page_is_back,
    harness,
    slow_article_page,
)

__all__ = ["harness"]  # the fixture, imported for the tests here

pytestmark = pytest.mark.slow

GRACE_SECONDS = 10


def _sigterm_after(harness: Harness, sent: int) -> None:
    """Start metwatch, SIGTERM it once ``sent`` chats have the story; exit 0 in time."""
    proc = harness.start("first")
    harness.wait_until(lambda: len(harness.emu.messages()) >= sent, 60, proc)
    code, took = harness.stop(proc, GRACE_SECONDS)
    print(f"\nSIGTERM after {sent} messages -> exit {code} in {took:.2f} s")
    assert code == 0, harness.log("first")[-3000:]
    assert took < GRACE_SECONDS


def test_sigterm_mid_fan_out_exits_0_and_a_restart_finishes(harness: Harness) -> None:
    _sigterm_after(harness, 40)

    before = harness.snapshot()
    assert 0 < sum(before.messages.values()) < len(CHATS)
    assert set(before.messages.values()) == {1}
    assert before.marked | before.pending == set(CHATS)  # nothing lost
    assert before.unrecorded <= before.in_flight
    calls_at_exit = len(harness.emu.calls("sendMessage"))
    time.sleep(0.5)
    assert len(harness.emu.calls("sendMessage")) == calls_at_exit  # nothing after the exit

    second = harness.start("second")
    harness.wait_all_delivered(second)
    time.sleep(1.0)
    final = Counter(m.chat_id for m in harness.emu.messages())
    duplicates = _report("SIGTERM", before, final)
    assert set(final) == set(CHATS)  # every chat got the story
    assert max(final.values()) <= 2
    assert {chat for chat, n in final.items() if n == 2} == before.unrecorded
    assert duplicates <= len(before.in_flight)  # only sends in flight at the signal repeat
    calls = Counter(_chat_calls(harness.emu))
    assert all(calls[chat] == 1 for chat in before.marked)

    code, took = harness.stop(second, GRACE_SECONDS)
    assert code == 0, harness.log("second")[-3000:]
    assert took < GRACE_SECONDS


def test_sigterm_lets_sends_under_way_finish(harness: Harness) -> None:
    # 0.3 s per answer: ~9 sends are always on the wire at 30/s, so SIGTERM meets some.
    harness.emu.delay("sendMessage", 0.3)
    harness.settle = 1.0
    _sigterm_after(harness, 40)

    before = harness.snapshot()
    print(f"in flight after a graceful stop: {sorted(before.in_flight)}")
    assert sum(before.messages.values()) < len(CHATS)
    assert before.marked | before.pending == set(CHATS)
    # Every send that reached Telegram finished and was marked: a restart repeats nothing.
    assert before.in_flight == set()
    assert before.unrecorded == set()
    assert "raised an exception" not in harness.log("first")


def test_sigterm_when_idle_exits_0_at_once(harness: Harness) -> None:
    """Nothing to send: the bot's 10 s long poll (getUpdates) must not hold the exit up."""
    harness.feeds.remove("/london.xml")
    proc = harness.start("idle")
    harness.wait_until(lambda: len(harness.emu.calls("getUpdates")) >= 1, 60, proc)
    time.sleep(0.5)  # inside the long poll
    code, took = harness.stop(proc, GRACE_SECONDS)
    print(f"\nidle SIGTERM -> exit {code} in {took:.2f} s")
    assert code == 0, harness.log("idle")[-3000:]
    assert took < 8  # docker stop allows 10 s; loaded CI machines are slow
    assert "Traceback" not in harness.log("idle")


def test_sigterm_during_the_full_text_fetch_loses_no_alert(harness: Harness) -> None:
    """SIGTERM while a poll waits for an article page: the poll is cancelled. The item it
    had already stored must still be classified and sent after the restart, and its source
    must be polled again at once, not after the 10-minute claim lease."""
    slow_article_page(harness)
    first = harness.start("first")
    harness.wait_until(lambda: harness.feeds.hits("/met-report") >= 1, 60, first)
    time.sleep(0.5)
    polls = harness.feeds.hits("/london.xml")
    code, took = harness.stop(first, GRACE_SECONDS)
    assert code == 0, harness.log("first")[-3000:]
    assert took < GRACE_SECONDS
    article_page_is_back(harness)

    second = harness.start("second")
    harness.wait_until(lambda: harness.feeds.hits("/london.xml") > polls, 10, second)
    harness.wait_all_delivered(second, timeout=30)
    assert Counter(m.chat_id for m in harness.emu.messages()) == Counter(CHATS)
