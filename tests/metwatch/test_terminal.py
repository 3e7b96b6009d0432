"""Feed text printed on a terminal cannot drive it: escapes, overwrites, reversals."""

from __future__ import annotations

import io
import logging

from bot.notifier import ConsoleNotifier
from metwatch.logs import TerminalFormatter
from metwatch.terminal import printable

#: Clear the screen, retitle the window, ring the bell, return and overwrite, a C1
#: control, and a right-to-left override that would show "gpj.exe" backwards.
HOSTILE = "Met\x1b[2J\x1b]0;owned\x07 report\rFAKE\x08\x9b \u202egpj.exe"
SHOWN = "Met\\x1b[2J\\x1b]0;owned\\x07 report\\x0dFAKE\\x08\\x9b \\u202egpj.exe"


def test_controls_and_direction_overrides_are_shown_as_escapes() -> None:
    assert printable(HOSTILE) == SHOWN
    # What metwatch's own output uses, and ordinary text, pass unchanged.
    ordinary = "Inspectors: “inadequate”\n\tMet Police – 60% NFA, 2017 👮\u200d♀️ €"
    assert printable(ordinary) == ordinary


async def test_the_console_subscriber_prints_escapes() -> None:
    stream = io.StringIO()
    await ConsoleNotifier(stream).send(1, f"<b>{HOSTILE}</b>")
    out = stream.getvalue()
    assert SHOWN in out and "\x1b" not in out and "\u202e" not in out


def test_text_log_lines_print_escapes() -> None:
    record = logging.LogRecord("metwatch", logging.WARNING, __file__, 1, "title %s", (HOSTILE,),
                               None)  # fmt: skip
    line = TerminalFormatter("%(message)s").format(record)
    assert line == f"title {SHOWN}"
