"""When a chat gets its messages: /pause, /resume, /quiet and /mode.

Each command stores the chat's preference (``metwatch.store.subscribers``);
the deliverer applies it (``bot.holds``): held messages stay in the outbox and
arrive when the hold ends, nothing is dropped. Times are in the configured
local time zone. In groups only the chat's administrators may change them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from zoneinfo import ZoneInfo

from telegram import Chat, Update
from telegram.ext import ContextTypes

from bot.holds import describe_until, parse_clock, parse_duration, parse_quiet
from metwatch.ports import Clock
from metwatch.store import SqlStore
from metwatch.store.subscribers import chat_prefs, pause, resume, set_mode, set_quiet

Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]
#: Resolves the chat when the sender may change it (else replies with a refusal).
Gate = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[Chat | None]]

USAGE = (
    ("pause", "/pause 24h", "Pause messages (30m, 24h, 2d)"),
    ("resume", "/resume", "End a pause"),
    ("quiet", "/quiet 22:00-07:00", "Hold messages during quiet hours (/quiet off)"),
    ("mode", "/mode instant|digest [hour]", "Each story at once, or a daily digest"),
)


class PreferenceCommands:
    def __init__(self, store: SqlStore, *, clock: Clock, tz: ZoneInfo, gate: Gate) -> None:
        self.store = store
        self.clock = clock
        self.tz = tz
        self.gate = gate

    def handlers(self) -> list[tuple[str, Handler]]:
        return [
            ("pause", self.pause), ("resume", self.resume),
            ("quiet", self.quiet), ("mode", self.mode),
        ]  # fmt: skip

    async def _reply(self, update: Update, html: str) -> None:
        if update.effective_message is not None:
            await update.effective_message.reply_html(html)

    async def pause(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = await self.gate(update, context)
        if chat is None:
            return
        duration = parse_duration("".join(context.args or []))
        if duration is None:
            await self._reply(
                update,
                "Send <code>/pause 24h</code> (or <code>30m</code>, <code>2d</code>; "
                "at most 30 days).",
            )
            return
        until = self.clock() + duration
        pause(self.store, chat.id, until)
        await self._reply(
            update,
            f"Paused until {describe_until(until, self.tz)}. Stories from meanwhile arrive "
            "then; /resume to get them now.",
        )

    async def resume(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = await self.gate(update, context)
        if chat is None:
            return
        resume(self.store, chat.id)
        await self._reply(update, "Resumed. Anything held back is on its way.")

    async def quiet(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = await self.gate(update, context)
        if chat is None:
            return
        argument = "".join(context.args or []).strip().lower()
        if argument == "off":
            set_quiet(self.store, chat.id, None, None)
            await self._reply(update, "Quiet hours are off.")
            return
        bounds = parse_quiet(argument)
        if bounds is None:
            prefs = chat_prefs(self.store, chat.id)
            now = f"Now: {prefs.quiet_start}-{prefs.quiet_end}. " if prefs.quiet_start else ""
            await self._reply(
                update,
                f"{now}Send <code>/quiet 22:00-07:00</code> to hold messages during those "
                f"hours ({self.tz.key} time), or <code>/quiet off</code>.",
            )
            return
        set_quiet(self.store, chat.id, *bounds)
        await self._reply(
            update,
            f"Quiet hours {bounds[0]}-{bounds[1]} ({self.tz.key}): stories that arrive then "
            "are sent when they end.",
        )

    async def mode(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = await self.gate(update, context)
        if chat is None:
            return
        args = [a.lower() for a in (context.args or [])]
        hour = parse_clock(args[1]) if len(args) > 1 else "08:00"
        if not args or args[0] not in ("instant", "digest") or hour is None:
            await self._reply(
                update,
                "Send <code>/mode instant</code> (each story at once) or "
                "<code>/mode digest 8</code> (one message a day at 08:00, "
                f"{self.tz.key} time).",
            )
            return
        digest_hour = int(hour[:2])
        set_mode(self.store, chat.id, args[0], digest_hour, self.clock())
        if args[0] == "instant":
            await self._reply(update, "Instant mode: each story is sent as it is found.")
        else:
            await self._reply(
                update,
                f"Digest mode: one message a day at {digest_hour:02d}:00 ({self.tz.key}), "
                "with the day's stories grouped by finding.",
            )
