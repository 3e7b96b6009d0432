"""Every Telegram error path of the deliverer, through the real PTB and the local Bot API.

Each test drives ``bot.deliver.Deliverer`` over ``bot.notifier.TelegramNotifier``, a real
python-telegram-bot ``Bot`` (or the ``Application`` that ``bot.app.build_application``
builds, with its AIORateLimiter) talking HTTP to ``tests.support.bot_api.BotApiEmulator``,
and a real SQLite store. The clock is injected, so "retry after N seconds" is checked by
moving the clock, not by sleeping. Every test asserts both sides: what the emulator
received (``calls``/``messages``) and what the outbox says (``outbox_counts``,
``pending_deliveries``, the rows' attempts and next_attempt_at, ``is_active``).

The edit path where Telegram answers "message can't be edited" is covered in
``tests/bot/test_story_messages.py``; here only its sibling "message to edit not found"
(the message was deleted) is.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.app import build_application
from bot.deliver import MAX_RETRY_DELAY, Deliverer
from bot.notifier import TelegramNotifier
from metwatch.errors import DeliveryError
from metwatch.logs import configure_logging
from metwatch.models import Classified, Evidence, Item, Match
from metwatch.store import SqlStore, open_store
from metwatch.store.sql import aware
from metwatch.store.tables import DeliveryRow
from tests.support.bot_api import BotApiEmulator

NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)
A, B = 101, 102
MATCH = Match(
    "announced-visits", "met-inspection", "Visits announced in advance", 1.0,
    (Evidence("Visits were announced in advance.", 0, 33),),
)  # fmt: skip


def _item(n: int) -> Item:
    return Item(
        f"item-{n}", "src", f"Outlet {n}", f"https://e.example/{n}",
        f"Met inspection report {n} & more", "", "Visits were announced in advance.", NOW,
        f"hash-{n}",
    )  # fmt: skip


class FakeClock:
    """The deliverer's clock; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _subscribe(
    store: SqlStore, chats: list[int], targets: tuple[str, ...] = ("met-inspection",)
) -> None:
    for chat in chats:
        store.subscribe(chat, targets, NOW, chat_type="private" if chat > 0 else "group")


def _flag(store: SqlStore, n: int = 1, story_id: int | None = None) -> int:
    """Flag item ``n`` (a new story, or joining ``story_id``); returns the story id."""
    item = _item(n)
    store.add_items([item], NOW)
    return store.record_flagged(Classified(item, (MATCH,)), story_id, NOW)


def _rows(store: SqlStore) -> dict[int, DeliveryRow]:
    """The outbox rows by chat id (the tests use one story unless they say otherwise)."""
    with Session(store.engine) as s:
        return {r.chat_id: r for r in s.exec(select(DeliveryRow).order_by(col(DeliveryRow.id)))}


def _sends_to(emu: BotApiEmulator, chat_id: int) -> list[dict[str, object]]:
    return [c for c in emu.calls("sendMessage") if str(c.get("chat_id")) == str(chat_id)]


@pytest.fixture(autouse=True)
def _timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to PTB's timedelta ``RetryAfter.retry_after``.

    PTB 22 warns (PTBDeprecationWarning) when it *builds* a RetryAfter with an int, inside
    PTB before ``bot.notifier.translate`` sees it, and warnings are errors in this suite.
    ``translate`` handles both types.
    """
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    opened = open_store(db_url)
    yield opened
    opened.engine.dispose()


@pytest.fixture
async def bot(bot_api: BotApiEmulator) -> AsyncIterator[Bot]:
    async with Bot(bot_api.token, base_url=bot_api.base_url) as running:
        yield running
    assert bot_api.errors == []


@pytest.fixture
def deliverer(store: SqlStore, bot: Bot, clock: FakeClock) -> Deliverer:
    return Deliverer(store, TelegramNotifier(bot), clock=clock)


# -- 429 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["bot", "application"])
async def test_429_postpones_only_that_chat(
    via: str, bot_api: BotApiEmulator, store: SqlStore, clock: FakeClock, bot: Bot
) -> None:
    _subscribe(store, [A, B])
    _flag(store)
    bot_api.fail_next("sendMessage", error_code=429, retry_after=7, chat_id=A)
    application = build_application(bot_api.token, bot_api.base_url)
    async with application:
        # "application" goes through AIORateLimiter(max_retries=0): the 429 must reach the
        # deliverer at once instead of pausing every chat for retry_after.
        notifier = TelegramNotifier(application.bot if via == "application" else bot)
        deliverer = Deliverer(store, notifier, clock=clock)

        report = await deliverer.drain()
        assert (report.sent, report.retried, report.rate_limited) == (1, 1, 1)
        assert [m.chat_id for m in bot_api.messages()] == [B]  # B in the same drain
        assert len(_sends_to(bot_api, A)) == 1
        row = _rows(store)[A]
        assert row.status == "pending" and row.attempts == 1
        assert aware(row.next_attempt_at) == NOW + timedelta(seconds=7)
        assert "7" in (row.last_error or "") and "rate limit" in (row.last_error or "").lower()
        assert store.pending_deliveries(clock()) == []

        clock.advance(6.9)  # not yet: nothing is sent early
        assert (await deliverer.drain()).sent == 0
        assert len(_sends_to(bot_api, A)) == 1

        clock.advance(0.1)
        assert [d.chat_id for d in store.pending_deliveries(clock())] == [A]
        report = await deliverer.drain()
        assert report.sent == 1
        assert [m.chat_id for m in bot_api.messages()] == [B, A]
        assert len(_sends_to(bot_api, A)) == 2
        assert store.outbox_counts() == {"sent": 2}
        assert _rows(store)[A].attempts == 0


# -- 403 and 400 chat not found: the chat is gone -----------------------------------------


@pytest.mark.parametrize(
    ("chat", "gone", "reason"),
    [
        (A, BotApiEmulator.block_chat, "blocked by the user"),
        (-202, BotApiEmulator.kick_from_chat, "kicked from the group"),
        (A, BotApiEmulator.forget_chat, "chat not found"),
    ],
    ids=["403-blocked", "403-kicked", "400-chat-not-found"],
)
async def test_gone_chat_is_deactivated_and_never_tried_again(
    chat: int,
    gone: object,
    reason: str,
    bot_api: BotApiEmulator,
    store: SqlStore,
    deliverer: Deliverer,
    clock: FakeClock,
) -> None:
    _subscribe(store, [chat, B])
    _flag(store, 1)
    gone(bot_api, chat)  # type: ignore[operator]

    report = await deliverer.drain()
    assert (report.sent, report.dropped) == (1, 1)
    assert not store.is_active(chat) and store.is_active(B)
    assert store.outbox_counts() == {"sent": 1, "cancelled": 1}
    assert len(_sends_to(bot_api, chat)) == 1
    assert [m.chat_id for m in bot_api.messages()] == [B]
    (gone_row,) = [r for r in store.export_subscribers() if r["chat_id"] == chat]
    assert reason in gone_row["deactivated_reason"].lower()

    # The chat comes back on Telegram's side, a new story and a day pass: still nothing is
    # tried for it (only /start re-subscribes), while B gets the new story.
    bot_api.restore_chat(chat)
    _flag(store, 2)
    clock.advance(86400)
    report = await deliverer.drain()
    assert report.sent == 1
    assert len(_sends_to(bot_api, chat)) == 1
    assert [m.chat_id for m in bot_api.messages()] == [B, B]
    assert store.outbox_counts() == {"sent": 2, "cancelled": 1}


# -- 400 can't parse entities: our HTML bug ------------------------------------------------


async def test_unparseable_html_is_resent_as_plain_text_and_logged(
    bot_api: BotApiEmulator,
    store: SqlStore,
    deliverer: Deliverer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _subscribe(store, [A])
    _flag(store)
    bot_api.fail_next(
        "sendMessage", error_code=400, chat_id=A,
        description='Bad Request: can\'t parse entities: Unsupported start tag "x" at byte '
        "offset 12",
    )  # fmt: skip

    with caplog.at_level(logging.ERROR, logger="bot.deliver"):
        report = await deliverer.drain()

    assert report.sent == 1
    first, second = _sends_to(bot_api, A)
    assert first["parse_mode"] == "HTML"
    assert "parse_mode" not in second  # plain text
    (message,) = bot_api.messages(A)
    assert message.parse_mode is None and message.entities == []
    assert "Met inspection report 1 & more" in message.text
    assert "<" not in message.text  # no HTML tags leak into the plain text
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].name == "bot.deliver"
    assert "rejected" in errors[0].getMessage() and errors[0].exc_info is not None
    assert re.search(r"(?i)can't parse entities", str(errors[0].exc_info[1]))
    assert store.outbox_counts() == {"sent": 1}
    assert _rows(store)[A].message_id == message.message_id


# -- group migrated to a supergroup -------------------------------------------------------


async def test_migrated_group_is_followed_to_its_new_id(
    bot_api: BotApiEmulator, store: SqlStore, deliverer: Deliverer, clock: FakeClock
) -> None:
    old, new = -300, -1000000000300
    _subscribe(store, [old], ("met-inspection", "announced-visits"))
    story_id = _flag(store)
    bot_api.migrate_chat(old, new)

    report = await deliverer.drain()
    assert (report.sent, report.retried) == (0, 1)
    assert bot_api.messages() == []
    assert len(_sends_to(bot_api, old)) == 1
    # The store followed the migration: subscriber, follows and outbox row.
    assert not store.is_active(old) and store.is_active(new)
    assert store.follows(old) == set()
    assert store.follows(new) == {"met-inspection", "announced-visits"}
    assert [(d.chat_id, d.story_id) for d in store.pending_deliveries(clock())] == [
        (new, story_id)
    ]

    report = await deliverer.drain()
    assert report.sent == 1
    assert [m.chat_id for m in bot_api.messages()] == [new]
    assert len(_sends_to(bot_api, old)) == 1
    assert store.outbox_counts() == {"sent": 1}
    assert set(_rows(store)) == {new}


# -- timeouts and 5xx: keep it, back off, deliver when Telegram is back -------------------


async def test_timeout_keeps_the_delivery_and_repeats_at_most_the_one_in_flight(
    bot_api: BotApiEmulator, store: SqlStore, clock: FakeClock
) -> None:
    """A timed-out send may have reached Telegram: that one message can arrive twice.

    The emulator accepts the message and answers 1.5 s late (``after_processing``); PTB gives
    up after 0.5 s and the deliverer cannot know Telegram sent it, so the row stays pending
    and is sent again on the retry. That is the documented "at most the one in flight"
    duplicate: one extra message per chat whose send timed out, never a lost one. (The
    bound is per timed-out attempt: if Telegram accepted and then timed out on every retry
    too, each such attempt would add a copy. The Bot API has no idempotency key to
    prevent it.)
    """
    _subscribe(store, [A, B])
    _flag(store)
    bot_api.delay("sendMessage", 1.5, after_processing=True)
    request = HTTPXRequest(read_timeout=0.5, write_timeout=0.5, connect_timeout=0.5)
    async with Bot(bot_api.token, base_url=bot_api.base_url, request=request) as bot:
        deliverer = Deliverer(store, TelegramNotifier(bot), clock=clock)
        report = await deliverer.drain()
        assert (report.sent, report.retried) == (0, 2)
        rows = _rows(store)
        for chat in (A, B):
            assert rows[chat].status == "pending" and rows[chat].attempts == 1
            assert aware(rows[chat].next_attempt_at) == NOW + timedelta(seconds=2)
            assert "timed out" in (rows[chat].last_error or "").lower()
        # Telegram did take both messages although PTB timed out.
        bot_api.wait_for_messages(2, timeout=5)

        bot_api.delay("sendMessage", 0)  # Telegram answers in time again
        clock.advance(2)
        report = await deliverer.drain()
    assert report.sent == 2
    assert store.outbox_counts() == {"sent": 2}
    for chat in (A, B):
        sent = bot_api.messages(chat)
        assert len(sent) == 2  # the one in flight, repeated once, not more
        assert sent[0].text == sent[1].text
        assert len(_sends_to(bot_api, chat)) == 2
        assert _rows(store)[chat].message_id == sent[1].message_id


@pytest.mark.parametrize("outage", ["502-unavailable", "500-error"])
async def test_5xx_backs_off_with_a_cap_and_delivers_when_back(
    outage: str,
    bot_api: BotApiEmulator,
    store: SqlStore,
    deliverer: Deliverer,
    clock: FakeClock,
) -> None:
    _subscribe(store, [A])
    _flag(store)
    if outage == "502-unavailable":
        bot_api.set_unavailable()
    else:
        bot_api.fail_next("sendMessage", error_code=500, description="Internal Server Error",
                          times=12)  # fmt: skip

    waits = []
    for attempt in range(1, 13):
        report = await deliverer.drain()
        assert (report.sent, report.retried, report.rate_limited) == (0, 1, 0)
        row = _rows(store)[A]
        assert row.status == "pending" and row.attempts == attempt
        assert "telegram" in (row.last_error or "").lower()
        at = aware(row.next_attempt_at)
        assert at is not None
        waits.append((at - clock()).total_seconds())
        # Nothing is retried before its time...
        assert (await deliverer.drain()).retried == 0
        clock.now = at  # ...and it is retried when the time comes.
    assert waits == [min(2.0**n, MAX_RETRY_DELAY) for n in range(1, 13)]
    assert waits[-1] == MAX_RETRY_DELAY  # capped: 2, 4, ..., 512, 600, 600
    assert bot_api.messages() == []

    bot_api.set_unavailable(False)
    report = await deliverer.drain()
    assert report.sent == 1
    assert len(bot_api.messages(A)) == 1
    assert store.outbox_counts() == {"sent": 1}
    row = _rows(store)[A]
    assert (row.attempts, row.last_error, row.next_attempt_at) == (0, None, None)


# -- the edit path: the message was deleted ------------------------------------------------


async def test_deleted_message_gets_a_new_message_instead_of_an_edit(
    bot_api: BotApiEmulator, bot: Bot, store: SqlStore, deliverer: Deliverer
) -> None:
    _subscribe(store, [A])
    story_id = _flag(store, 1)
    await deliverer.drain()
    (first,) = bot_api.messages(A)
    assert await bot.delete_message(A, first.message_id)  # the user deleted it

    _flag(store, 2, story_id)  # more coverage: the story's revision 2 is owed to A
    report = await deliverer.drain()

    assert report.edited == 1
    assert len(bot_api.calls("editMessageText")) == 1  # tried the edit first
    deleted, fresh = bot_api.messages(A)
    assert deleted.deleted and not fresh.deleted
    assert "Outlet 2" in fresh.text
    # The reply target is gone; allow_sending_without_reply makes it a plain new message.
    assert fresh.reply_to_message_id is None
    assert _sends_to(bot_api, A)[-1]["reply_parameters"]["message_id"] == first.message_id  # type: ignore[index]
    row = _rows(store)[A]
    assert (row.status, row.message_id, row.sent_revision) == ("sent", fresh.message_id, 2)
    # Later edits go to the new message.
    _flag(store, 3, story_id)
    await deliverer.drain()
    assert bot_api.calls("editMessageText")[-1]["message_id"] == fresh.message_id
    assert len(bot_api.messages(A)) == 2 and bot_api.messages(A)[1].edits != []


# -- the token never leaks ---------------------------------------------------------------


async def test_token_is_never_in_errors_logs_or_the_database(
    bot_api: BotApiEmulator, store: SqlStore, clock: FakeClock, capfd: pytest.CaptureFixture[str]
) -> None:
    """The Bot API URL holds the token; no failing send may carry it anywhere."""
    token = bot_api.token
    configure_logging("DEBUG", [token], json_format=False)
    faults: list[tuple[str, Callable[[], None]]] = [
        ("timeout", lambda: bot_api.delay("sendMessage", 1.0)),
        ("502", lambda: bot_api.set_unavailable()),
        ("500", lambda: bot_api.fail_next("sendMessage", error_code=500)),
        ("429", lambda: bot_api.fail_next("sendMessage", error_code=429, retry_after=3)),
        ("403", lambda: bot_api.block_chat(A)),
        ("400 chat", lambda: bot_api.forget_chat(A)),
        ("400 html", lambda: bot_api.fail_next(
            "sendMessage", error_code=400, description="Bad Request: can't parse entities: x")),
        ("migrated", lambda: bot_api.migrate_chat(-400, -1000000000400)),
    ]  # fmt: skip
    errors: dict[str, BaseException] = {}
    try:
        request = HTTPXRequest(read_timeout=0.3, write_timeout=0.3, connect_timeout=0.3)
        async with Bot(token, base_url=bot_api.base_url, request=request) as bot:
            notifier = TelegramNotifier(bot)
            for name, fault in faults:
                fault()
                try:
                    await notifier.send(-400 if name == "migrated" else A, name)
                except DeliveryError as e:
                    errors[name] = e
                bot_api.delay("sendMessage", 0)
                bot_api.set_unavailable(False)
                bot_api.restore_chat(A)
            # The deliverer's own logging of each outcome, with tracebacks.
            chats = [B, 103, 104, 105, 106]
            _subscribe(store, chats)
            _flag(store)
            bot_api.block_chat(B)
            bot_api.fail_next(
                "sendMessage", error_code=400, chat_id=103,
                description="Bad Request: can't parse entities: bad tag",
            )  # fmt: skip
            bot_api.fail_next("sendMessage", error_code=429, retry_after=3, chat_id=104)
            bot_api.fail_next("sendMessage", error_code=500, chat_id=105)
            bot_api.migrate_chat(106, -1000000000106)
            await Deliverer(store, notifier, clock=clock).drain()
    finally:
        logging.getLogger().handlers.clear()

    assert set(errors) == {name for name, _ in faults}  # every fault raised a DeliveryError
    for name, error in errors.items():
        chain: BaseException | None = error
        while chain is not None:  # the whole chain: metwatch's, PTB's and httpx's exceptions
            text = "".join(traceback.format_exception_only(chain))
            assert token not in text and token not in repr(chain), name
            chain = chain.__cause__ or chain.__context__
    logs = capfd.readouterr().err
    for outcome in ("rejected", "gone", "postponed", "moved"):
        assert outcome in logs  # the failures were logged...
    assert "<redacted>" in logs  # ...PTB logged its URL, redacted...
    assert token not in logs  # ...and the token appears nowhere,
    assert token.partition(":")[2] not in logs  # not even its secret half.
    for row in _rows(store).values():
        assert token not in (row.last_error or "")


async def test_migration_onto_an_already_subscribed_supergroup(
    bot_api: BotApiEmulator, store: SqlStore, deliverer: Deliverer, clock: FakeClock
) -> None:
    """The new supergroup said /start before the deliverer met the old id's 400."""
    old, new = -301, -1000000000301
    _subscribe(store, [old], ("met-inspection", "announced-visits"))
    _subscribe(store, [new], ("met-inspection",))
    _flag(store)  # both chats are owed the story
    bot_api.migrate_chat(old, new)

    await deliverer.drain()
    await deliverer.drain()

    assert [m.chat_id for m in bot_api.messages()] == [new]  # once, not twice
    assert store.is_active(new) and not store.is_active(old)
    assert store.follows(new) == {"met-inspection", "announced-visits"}
    assert store.pending_deliveries(clock() + timedelta(days=1)) == []
