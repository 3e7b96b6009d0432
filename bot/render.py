"""Story -> Telegram HTML. Pure. Everything from feeds is escaped.

Telegram accepts at most 4096 characters of text after entity parsing; the
HTML source is always at least as long as that text, so a message whose
source fits in the limit always fits. When a story is too long it is
shortened in a stated order: evidence quotes are trimmed first, then extra
links are collapsed to "+N more". Tags are never cut.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from metwatch.models import Match, Story, StoryLink

TELEGRAM_LIMIT = 4096
_TAG = re.compile(r"<[^>]+>")


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def _link(link: StoryLink) -> str:
    if link.url and link.url.startswith(("http://", "https://")):
        return f'<a href="{esc(link.url)}">{esc(link.outlet)}</a>'
    return esc(link.outlet)


def _with_copies(link: StoryLink, links: tuple[StoryLink, ...]) -> str:
    """An outlet's link followed by the sites that ran the same text."""
    copies = [_link(c) for c in links if c.copy_of == link.item_id]
    return _link(link) + (f" (same text: {', '.join(copies)})" if copies else "")


def _quote(text: str, limit: int) -> str:
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return esc(text)


def _finding_line(match: Match, quote_limit: int) -> str:
    line = f"• <b>{esc(match.title)}</b>"
    if match.evidence and quote_limit > 0:
        line += f"\n  <i>“{_quote(match.evidence[0].sentence, quote_limit)}”</i>"
    return line


def render_story(story: Story, *, limit: int = TELEGRAM_LIMIT) -> str:
    """The message for a story, shortened to fit ``limit``."""
    for quote_limit, max_links in ((400, 20), (200, 10), (100, 5), (0, 3), (0, 1)):
        text = _compose(story, quote_limit, max_links)
        if len(text) <= limit:
            return text
    return _TAG.sub("", text)[: limit - 1] + "…"


def _compose(story: Story, quote_limit: int, max_links: int) -> str:
    first = story.links[0] if story.links else None
    lines = [f"<b>{_quote(story.headline, 200)}</b>"]
    if first is not None:
        when = f" · {first.published:%d %b %Y %H:%M} UTC" if first.published else ""
        lines.append(f"{_with_copies(first, story.links)}{when}")
    if story.summary:
        lines += ["", esc(" ".join(story.summary))]
    findings = [m for m in story.matches if not m.topic_only]
    topics = [m for m in story.matches if m.topic_only]
    if findings:
        lines += ["", "<b>Findings</b>"] + [_finding_line(m, quote_limit) for m in findings]
    elif topics:
        lines += ["", "<b>On topic</b>"] + [_finding_line(m, quote_limit) for m in topics]
    others = [link for link in story.links[1:] if link.copy_of is None]
    if others:
        shown = ", ".join(_with_copies(link, story.links) for link in others[:max_links])
        more = f" +{len(others) - max_links} more" if len(others) > max_links else ""
        lines += ["", f"Also reported by: {shown}{more}"]
    if first is not None and first.url and first.url.startswith(("http://", "https://")):
        lines += ["", f'<a href="{esc(first.url)}">Read the article</a>']
    return "\n".join(lines)


def render_digest(stories: Sequence[Story], tz: ZoneInfo, *, limit: int = TELEGRAM_LIMIT) -> str:
    """One message for a digest chat: the stories since the last digest, by finding.

    A story that reports several findings is listed under each of them; the
    list is cut, with "+N more", to fit ``limit``.
    """
    by_finding: dict[str, list[Story]] = {}
    titles: dict[str, str] = {}
    for story in stories:
        for m in story.matches:
            by_finding.setdefault(m.finding_id, []).append(story)
            titles[m.finding_id] = m.title
    day = max((s.first_seen for s in stories), default=None)
    when = f" – {day.astimezone(tz):%d %b %Y}" if day else ""
    head = (
        f"<b>metwatch digest{when}</b>: {len(stories)} stor{'y' if len(stories) == 1 else 'ies'}"
    )
    body: list[str] = []
    for finding_id, members in by_finding.items():
        body += ["", f"<b>{esc(titles[finding_id])}</b>"]
        body += [f"• {_headline_link(s)}" for s in members]
    lines = [head]
    for n, line in enumerate(body):
        # Whole lines only, so a tag is never cut; leave room for the "more" line.
        if len("\n".join([*lines, line])) > limit - 40:
            lines.append(f"… +{len(body) - n} more lines")
            break
        lines.append(line)
    return "\n".join(lines)


def _headline_link(story: Story) -> str:
    first = story.links[0] if story.links else None
    headline = _quote(story.headline, 150)
    if first is not None and first.url and first.url.startswith(("http://", "https://")):
        headline = f'<a href="{esc(first.url)}">{headline}</a>'
    outlets = sorted({link.outlet for link in story.links})
    return f"{headline} ({esc(', '.join(outlets))})"


def plain_text(message_html: str) -> str:
    """The same message without markup (console output, or Telegram fallback)."""
    return html.unescape(_TAG.sub("", message_html))
