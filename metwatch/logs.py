"""Logging set-up with secret redaction.

httpx logs every request URL at INFO, and a Bot API URL contains the bot
token; a filter on the root handler replaces every configured secret with
``<redacted>`` in messages, arguments and exception text.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from pythonjsonlogger.json import JsonFormatter

from metwatch.terminal import printable


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class TerminalFormatter(logging.Formatter):
    """Plain-text lines with feed text's control characters escaped (JSON lines
    escape them already)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def configure_logging(
    level: str, secrets: Iterable[str] = (), *, json_format: bool | None = None
) -> None:
    """Log to stderr (stdout carries console alerts), secrets redacted everywhere.

    Lines are JSON objects when stderr is not a terminal (containers, log
    shippers) unless ``json_format`` says otherwise; plain text on a terminal.
    """
    handler = logging.StreamHandler(sys.stderr)
    if json_format is None:
        json_format = not sys.stderr.isatty()
    if json_format:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(TerminalFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Per-request lines from httpx are noise at INFO (and carry URLs); keep warnings.
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic", "telegram.ext.Updater"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
