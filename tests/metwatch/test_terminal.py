"""Feed text printed on a terminal cannot drive it: escapes, overwrites, reversals."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from bot.notifier import ConsoleNotifier
from metwatch.logs import TerminalFormatter
from metwatch.terminal import printable, printable_json
from tests.test_cli import SEED_002, metwatch

#: Clear the screen, retitle the window, ring the bell, return and overwrite, a C1
#: control, and a right-to-left override that would show "gpj.exe" backwards.
HOSTILE = "Met\x1b[2J\x1b]0;owned\x07 report\rFAKE\x08\x9b \u202egpj.exe"
SHOWN = "Met\\x1b[2J\\x1b]0;owned\\x07 report\\x0dFAKE\\x08\\x9b \\u202egpj.exe"


def test_controls_and_direction_overrides_are_shown_as_escapes() -> None:
    assert printable(HOSTILE) == SHOWN
    # What metwatch's own output uses, and ordinary text, pass unchanged.
    ordinary = "Inspectors: “inadequate”\n\tMet Police – 60% NFA, 2017 👮\u200d♀️ €"
    assert printable(ordinary) == ordinary


def test_invisible_marks_are_shown_but_the_joiners_emoji_need_are_kept() -> None:
    hidden = "Met\u200bPolice \u200fRLM \u200eLRM \u061cALM word\u2060joiner \ufeffBOM"
    assert printable(hidden) == (
        "Met\\u200bPolice \\u200fRLM \\u200eLRM \\u061cALM word\\u2060joiner \\ufeffBOM"
    )
    assert printable("👮\u200d♀️ می\u200cخواهم") == "👮\u200d♀️ می\u200cخواهم"


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


def test_json_output_is_printable_and_still_parses_to_the_same_text() -> None:
    # \x92: cp1252's apostrophe read as Latin-1, common in mis-decoded titles.
    value = {"title": f"Police\x92s {HOSTILE}", "lines": "a\nb"}
    out = printable_json(value)
    assert json.loads(out) == value
    assert not any(c in out for c in "\x1b\x07\x92\x9b\u202e\r")


def test_classify_json_with_hostile_text_parses(tmp_path: Path) -> None:
    article = tmp_path / "article.txt"
    body = SEED_002.read_text(encoding="utf-8")
    article.write_text("Police\x92s \u202ereport\x1b[2J " + body, encoding="utf-8")
    result = metwatch("classify", "--json", str(article), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    data = json.loads(result.stdout)
    assert data["title"].startswith("Police\x92s \u202ereport\x1b[2J ")  # the same text
    assert "iic-nfa-rate" in {f["id"] for f in data["findings"]}
