"""The ports the pipeline depends on. Implementations are wired in ``metwatch.app``."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Notifier(Protocol):
    """Where messages go: Telegram, or the console when no token is set."""

    async def send(
        self, chat_id: int, text: str, *, html: bool = True, reply_to: int | None = None
    ) -> int:
        """Send a message; return its message id.

        Raises:
            RateLimited: wait ``retry_after`` seconds, then retry.
            RecipientGone: the chat blocked or removed the bot, or does not exist.
            ChatMoved: the chat has a new id.
            MessageRejected: the message is invalid (bad HTML, too long).
            DeliveryUnavailable: timeout or server error; retry later.
        """
        ...

    async def edit(self, chat_id: int, message_id: int, text: str) -> None:
        """Replace the text of a message sent earlier.

        Raises:
            MessageGone: the message cannot be edited any more (send a reply instead).
            and the errors of ``send``.
        """
        ...


class Clock(Protocol):
    def __call__(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...
