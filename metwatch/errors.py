"""The metwatch error hierarchy.

    MetwatchError
    ├── SourceError(source_id, url)     one source could not be polled; others go on
    │   ├── FetchError                  network, timeout, HTTP status, size cap, not a feed
    │   └── ParseError                  the body could not be read as a feed or page
    ├── RulesError(path, line, column)  the watch rules file is invalid; nothing loads
    ├── DeliveryError                   Telegram refused or failed a message
    ├── StoreError                      the database failed (not a programming error)
    └── SettingsError                   a setting has a wrong value

Adapters translate library exceptions (httpx, feedparser, SQLAlchemy, PTB) into
these with ``raise ... from e``. Programming errors are not translated.
"""

from __future__ import annotations


class MetwatchError(Exception):
    """Base class of every error metwatch raises on purpose."""


class SourceError(MetwatchError):
    """Polling one source failed. The message is a sentence an admin can act on."""

    def __init__(self, message: str, *, url: str, source_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.source_id = source_id

    def __str__(self) -> str:
        return f"{self.message} ({self.url})"

    def __reduce__(self) -> tuple[object, ...]:
        # The keyword-only arguments defeat pickle's default (it replays only
        # ``args``); feeds are parsed in a worker process, and its errors cross back.
        return (_restore, (type(self), self.message, dict(self.__dict__)))


def _restore(cls: type[SourceError], message: str, state: dict[str, object]) -> SourceError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class FetchError(SourceError):
    """The source URL could not be fetched (network, timeout, HTTP status, size)."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        source_id: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        unanswered: bool = False,
    ) -> None:
        super().__init__(message, url=url, source_id=source_id)
        #: Seconds the server asked us to wait (429/503 Retry-After).
        self.retry_after = retry_after
        #: The HTTP status when the server answered with an error (None otherwise).
        self.status = status
        #: The site did not answer: a timeout, or no connection.
        self.unanswered = unanswered


class ParseError(SourceError):
    """The body was fetched but is not a readable feed or page."""


class RulesError(MetwatchError):
    """The watch rules file is invalid. Names the file, the line and the reason."""

    def __init__(
        self,
        reason: str,
        *,
        path: str,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        self.column = column
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.reason}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class RulesErrors(RulesError):
    """Several problems found in one rules file; ``str()`` lists them all."""

    def __init__(self, errors: list[RulesError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.reason, path=first.path, line=first.line, column=first.column)

    def __str__(self) -> str:
        return "\n".join(RulesError.__str__(e) for e in self.errors)


class DeliveryError(MetwatchError):
    """Telegram (or the console) could not take a message."""


class StoreError(MetwatchError):
    """The database failed in a way that is not a programming error."""


class SettingsError(MetwatchError):
    """A setting has a wrong value; the message names the variable."""


class RecipientGone(DeliveryError):
    """The chat blocked the bot, kicked it, or no longer exists: stop sending to it."""


class ChatMoved(DeliveryError):
    """A group became a supergroup with a new chat id."""

    def __init__(self, message: str, new_chat_id: int) -> None:
        super().__init__(message)
        self.new_chat_id = new_chat_id


class RateLimited(DeliveryError):
    """Telegram asked us to wait ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MessageRejected(DeliveryError):
    """Telegram refused the message itself (bad HTML, too long): our bug, not theirs."""


class MessageGone(DeliveryError):
    """The message to edit no longer exists or can no longer be edited."""


class DeliveryUnavailable(DeliveryError):
    """Telegram timed out or answered 5xx: try again later, keep the delivery."""
