"""The follow keyboard: one button per topic and per finding, and its callback data.

Callback data is ``f:<topic-or-finding-id>``. It names only what to toggle, never
a chat: the handler acts on the chat the button was pressed in. ``parse_follow``
refuses anything that is not that shape or names an id the current rules do
not have (a forged or outdated button).

Does not read or write follows (``bot.handlers`` does) and sends nothing.
"""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from classifiers.rules import RuleSet

PREFIX = "f:"
_DATA = re.compile(r"f:([a-z0-9][a-z0-9-]{0,39})")
FOLLOWED = "✓"
NOT_FOLLOWED = "○"


def _button(label: str, target: str, followed: bool) -> list[InlineKeyboardButton]:
    mark = FOLLOWED if followed else NOT_FOLLOWED
    return [InlineKeyboardButton(f"{mark} {label}", callback_data=PREFIX + target)]


def follow_keyboard(rules: RuleSet, follows: set[str]) -> InlineKeyboardMarkup:
    """Each topic ("everything on ...") followed by its findings, marked ✓ when followed.

    Button labels are plain text (Telegram does not parse them), so nothing is escaped.
    """
    rows = []
    for topic in rules.topics:
        rows.append(_button(f"Everything on {topic.title}", topic.id, topic.id in follows))
        for finding in rules.findings:
            if finding.topic_id == topic.id:
                rows.append(_button(finding.title, finding.id, finding.id in follows))
    return InlineKeyboardMarkup(rows)


def parse_follow(data: str | None, rules: RuleSet) -> str | None:
    """The topic or finding id a button names, or None when it is not a valid button."""
    match = _DATA.fullmatch(data or "")
    if match is None or match[1] not in rules.follow_targets:
        return None
    return match[1]
