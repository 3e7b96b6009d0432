"""Telegram HTML for command replies: welcome, findings, latest stories, search, sources.

Pure functions. Everything that comes from the rules file, feeds or users is
escaped with ``html.escape``; long texts are cut before escaping, so no entity
or tag is ever split. Alerts themselves are ``bot.render``'s job.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from classifiers.rules import RuleSet
from metwatch.durations import duration
from metwatch.models import SourceHealth, Story
from metwatch.store.subscribers import FoundItem

DESCRIPTION_LIMIT = 160
HEADLINE_LIMIT = 160
MAX_OUTLETS = 4
#: Telegram's limit for one message (the HTML source is never shorter than the text).
MESSAGE_LIMIT = 4096


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _link(title: str, url: str | None) -> str:
    if url and url.startswith(("http://", "https://")):
        return f'<a href="{esc(url)}">{esc(title)}</a>'
    return esc(title)


def welcome(rules: RuleSet) -> str:
    """Three short lines: what was done, what the buttons do, where to go next."""
    topics = ", ".join(esc(t.title) for t in rules.topics)
    return (
        f"Subscribed: you will get every new story on {topics}.\n"
        "Tap a finding below to follow it by itself (✓ = followed).\n"
        "/findings shows this list, /pause 24h takes a break, /stop ends all messages."
    )


def findings_list(rules: RuleSet) -> str:
    """Every topic and finding with its id and a one-line description.

    Without the descriptions when they would not fit in one Telegram message.
    """
    text = _findings_list(rules, describe=True)
    return text if len(text) <= MESSAGE_LIMIT else _findings_list(rules, describe=False)


def _findings_list(rules: RuleSet, *, describe: bool) -> str:
    lines = [
        "<b>Tracked findings</b>",
        "Tap to follow or unfollow (✓ = followed). A topic brings every story on it; "
        "a finding, the stories that report it.",
    ]
    for topic in rules.topics:
        lines += ["", f"<b>{esc(topic.title)}</b> (<code>{esc(topic.id)}</code>)"]
        for f in rules.findings:
            if f.topic_id == topic.id:
                line = f"• <b>{esc(f.title)}</b> (<code>{esc(f.id)}</code>)"
                if describe:
                    line += f"\n  {esc(shorten(f.description, DESCRIPTION_LIMIT))}"
                lines.append(line)
    return "\n".join(lines)


def valid_ids(rules: RuleSet) -> str:
    ids = [t.id for t in rules.topics] + [f.id for f in rules.findings]
    return ", ".join(f"<code>{esc(i)}</code>" for i in ids)


def target_title(rules: RuleSet, target: str) -> str:
    """The title of a topic or finding id (the id itself when unknown)."""
    topic, finding = rules.topic(target), rules.finding(target)
    return topic.title if topic else finding.title if finding else target


def _story_brief(story: Story) -> str:
    first = story.links[0] if story.links else None
    headline = shorten(story.headline, HEADLINE_LIMIT)
    lines = [f"<b>{_link(headline, first.url if first else None)}</b>"]
    outlets = list(dict.fromkeys(link.outlet for link in story.links))
    if outlets:
        more = f" +{len(outlets) - MAX_OUTLETS} more" if len(outlets) > MAX_OUTLETS else ""
        lines.append(esc(", ".join(outlets[:MAX_OUTLETS])) + more)
    findings = [m.title for m in story.matches if not m.topic_only]
    if findings:
        lines.append("Findings: " + esc("; ".join(findings)))
    elif story.matches:
        lines.append("On topic")
    return "\n".join(lines)


def latest(stories: Sequence[Story]) -> str:
    if not stories:
        return "No stories yet. New coverage is sent to you as it appears."
    return "<b>Latest stories</b>\n\n" + "\n\n".join(_story_brief(s) for s in stories)


def _found(item: FoundItem) -> str:
    when = f", {item.published:%d %b %Y}" if item.published else ""
    return f"• {_link(shorten(item.title, HEADLINE_LIMIT), item.url)} — {esc(item.outlet)}{when}"


def search_results(words: Sequence[str], items: Sequence[FoundItem]) -> str:
    query = esc(shorten(" ".join(words), 100))
    if not items:
        return f"Nothing stored mentions <i>{query}</i>."
    return f"<b>Search:</b> <i>{query}</i>\n" + "\n".join(_found(i) for i in items)


def source_line(h: SourceHealth, now: datetime) -> str:
    """One source's health, a few hundred characters at most (``messages`` splits
    a list of them between lines)."""
    last = f"{h.last_success:%d %b %H:%M}" if h.last_success else "never"
    name = esc(shorten(h.name, 100))
    line = f"• {name} (<code>{esc(h.id)}</code>): {h.state}, last success {last}"
    if h.moved_to:
        line += f", moved permanently to {esc(shorten(h.moved_to, 300))}"
    if h.gap_at is not None and h.recent_gap(now):
        after = f" {duration(h.gap_after)} after the poll before" if h.gap_after else ""
        line += (f", possible gap {h.gap_at:%d %b %H:%M}: all {h.gap_entries} entries were "
                 f"new{after}")  # fmt: skip
    if h.error_count:
        line += f", {h.error_count} error(s) in a row"
    if h.last_error:
        line += f", last error: {esc(shorten(h.last_error, 200))}"
    return line


def sources(health: Sequence[SourceHealth], now: datetime) -> str:
    if not health:
        return "No sources are enabled."
    failing = sum(h.failing for h in health)
    head = f"<b>Sources</b> ({len(health)}, {failing} failing) at {now:%d %b %H:%M} UTC"
    body = [
        source_line(h, now) + f", {h.items_seen} items, next poll {_when(h.next_poll)}"
        for h in health
    ]
    return "\n".join([head, *body])


def _when(value: datetime | None) -> str:
    return f"{value:%H:%M}" if value else "not scheduled"


def messages(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """``text`` as few messages as Telegram's limit allows, split between lines.

    For lists that grow with the rules file (``/sources``, ``/status``): their
    lines are each far below the limit and hold whole tags, so no split breaks
    the HTML.
    """
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        if current and len(current) + 1 + len(line) > limit:
            parts.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    return [*parts, current]


def status(
    health: Sequence[SourceHealth], outbox: dict[str, int], rules_version: str, now: datetime
) -> str:
    lines = [f"<b>Rules</b> {esc(rules_version)}"]
    lines.append(
        "<b>Outbox</b> " + (", ".join(f"{k}: {v}" for k, v in sorted(outbox.items())) or "empty")
    )
    lines.append("<b>Sources</b>")
    lines += [source_line(h, now) for h in health]
    return "\n".join(lines)
