"""The outbox: one delivery per (chat, story), nothing lost across a restart."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.deliver import Deliverer
from bot.notifier import ConsoleNotifier
from metwatch.errors import RateLimited, RecipientGone
from metwatch.models import Classified, Evidence, Item, Match
from metwatch.store import SqlStore, open_store
from metwatch.store.tables import DeliveryRow

NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)
ITEM = Item(
    "i1", "src", "Outlet", "https://e.example/a", "Met <b>report</b> & more", "", "Body.", NOW, "h"
)
MATCH = Match("announced-visits", "met-inspection", "Visits", 1.0, (Evidence("Body.", 0, 5),))


def _flag(store: SqlStore, chats: list[int]) -> int:
    for chat in chats:
        store.subscribe(chat, ["met-inspection"], NOW)
    store.add_items([ITEM], NOW)
    return store.record_flagged(Classified(ITEM, (MATCH,)), None, NOW)


def test_second_delivery_of_a_story_to_a_chat_is_impossible(db_url: str) -> None:
    store = open_store(db_url)
    story_id = _flag(store, [1])
    with Session(store.engine) as s:
        s.add(DeliveryRow(chat_id=1, story_id=story_id, created_at=NOW))
        with pytest.raises(IntegrityError):
            s.commit()


class FlakyNotifier(ConsoleNotifier):
    """Console notifier whose chat 2 is rate limited once and chat 3 has blocked the bot."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.sent: list[int] = []
        self.limited = False

    async def send(
        self, chat_id: int, text: str, *, html: bool = True, reply_to: int | None = None
    ) -> int:
        if chat_id == 2 and not self.limited:
            self.limited = True
            raise RateLimited("Telegram rate limit: retry after 30", 30)
        if chat_id == 3:
            raise RecipientGone("Telegram refused: bot was blocked by the user")
        self.sent.append(chat_id)
        return await super().send(chat_id, text)


async def test_drain_survives_errors_and_a_restart(db_url: str) -> None:
    store = open_store(db_url)
    _flag(store, [1, 2, 3])
    notifier = FlakyNotifier()
    clock = [NOW]
    report = await Deliverer(store, notifier, clock=lambda: clock[0]).drain()
    assert (report.sent, report.retried, report.dropped) == (1, 1, 1)
    assert notifier.sent == [1]
    assert not store.is_active(3)

    # "Restart": a new store and deliverer on the same file, 31 s later.
    store.engine.dispose()
    store = open_store(db_url)
    clock[0] = NOW.replace(second=31)
    report = await Deliverer(store, notifier, clock=lambda: clock[0]).drain()
    assert notifier.sent == [1, 2]  # chat 2 got it after its wait, chat 1 not twice
    assert await Deliverer(store, notifier, clock=lambda: clock[0]).drain() == report.__class__()
    assert store.outbox_counts() == {"sent": 2, "cancelled": 1}


async def test_feed_text_is_escaped_in_messages(db_url: str) -> None:
    store = open_store(db_url)
    story_id = _flag(store, [1])
    from bot.render import render_story

    html = render_story(store.story(story_id))
    assert "Met &lt;b&gt;report&lt;/b&gt; &amp; more" in html
    assert "<b>report</b>" not in html
