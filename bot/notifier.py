"""Notifiers: TelegramNotifier (python-telegram-bot) and ConsoleNotifier.

TelegramNotifier translates PTB's errors into metwatch's delivery errors, so
the deliverer decides what to do without knowing PTB. ConsoleNotifier prints
plain text, for running without a token.
"""

from __future__ import annotations

import itertools
import sys
import warnings
from typing import TextIO

from telegram import Bot, LinkPreviewOptions, ReplyParameters
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.render import plain_text
from metwatch.errors import (
    ChatMoved,
    DeliveryError,
    DeliveryUnavailable,
    MessageGone,
    MessageRejected,
    RateLimited,
    RecipientGone,
)
from metwatch.terminal import printable

_GONE_CHAT = ("chat not found", "user is deactivated", "bot was kicked", "not enough rights")
_GONE_MESSAGE = ("message to edit not found", "message can't be edited", "message_id_invalid")


def translate(error: TelegramError) -> DeliveryError:
    """PTB error -> metwatch delivery error (the message never holds the token)."""
    text = error.message
    lowered = text.lower()
    if isinstance(error, RetryAfter):
        with warnings.catch_warnings():
            # PTB 22 warns that retry_after will become a timedelta; both are handled.
            warnings.simplefilter("ignore")
            retry = error.retry_after
        seconds = retry if isinstance(retry, int | float) else retry.total_seconds()
        return RateLimited(f"Telegram rate limit: {text}", float(seconds))
    if isinstance(error, ChatMigrated):
        return ChatMoved(f"chat migrated: {text}", int(error.new_chat_id))
    if isinstance(error, Forbidden):
        return RecipientGone(f"Telegram refused: {text}")
    if isinstance(error, BadRequest):
        if any(k in lowered for k in _GONE_CHAT):
            return RecipientGone(f"Telegram refused: {text}")
        if any(k in lowered for k in _GONE_MESSAGE):
            return MessageGone(f"cannot edit: {text}")
        return MessageRejected(f"Telegram rejected the message: {text}")
    if isinstance(error, TimedOut | NetworkError):
        return DeliveryUnavailable(f"Telegram unavailable: {text}")
    return DeliveryUnavailable(f"Telegram error: {text}")


class TelegramNotifier:
    """Sends through a PTB ``Bot`` (rate-limited by the Application's AIORateLimiter)."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(
        self, chat_id: int, text: str, *, html: bool = True, reply_to: int | None = None
    ) -> int:
        try:
            message = await self.bot.send_message(
                chat_id,
                text if html else plain_text(text),
                parse_mode="HTML" if html else None,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_parameters=(
                    ReplyParameters(reply_to, allow_sending_without_reply=True)
                    if reply_to
                    else None
                ),
            )
        except TelegramError as e:
            raise translate(e) from e
        return message.message_id

    async def edit(self, chat_id: int, message_id: int, text: str) -> None:
        try:
            await self.bot.edit_message_text(
                text,
                chat_id=chat_id,
                message_id=message_id,
                parse_mode="HTML",
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except BadRequest as e:
            if "message is not modified" in e.message.lower():
                return
            raise translate(e) from e
        except TelegramError as e:
            raise translate(e) from e


class ConsoleNotifier:
    """Prints messages as plain text; used when no Telegram token is configured."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._ids = itertools.count(1)

    async def send(
        self, chat_id: int, text: str, *, html: bool = True, reply_to: int | None = None
    ) -> int:
        message_id = next(self._ids)
        self._print(f"[alert #{message_id}]", text)
        return message_id

    async def edit(self, chat_id: int, message_id: int, text: str) -> None:
        self._print(f"[update to alert #{message_id}]", text)

    def _print(self, header: str, text: str) -> None:
        rule = "─" * 72
        self.stream.write(f"{rule}\n{header}\n{printable(plain_text(text))}\n")
        self.stream.flush()
