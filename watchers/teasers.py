"""Which entries are only a teaser, and what fetching their article needs. Pure.

Apart from ``watchers.fulltext`` (which fetches and extracts, with httpx and
trafilatura) so that worker processes can note teasers while normalising a
feed without importing either.
"""

from __future__ import annotations

from dataclasses import dataclass

from metwatch.models import RawEntry
from watchers.normalise import html_to_text

#: Feeds often repeat a short teaser; below this many characters of text an item
#: rarely holds the sentence that states a finding.
DEFAULT_MIN_CHARS = 400


@dataclass(frozen=True, slots=True)
class Teaser:
    """What the full-text step needs of an entry that is only a teaser."""

    #: The entry's own link (the article page).
    link: str
    #: Whether the entry has a headline (a plain sitemap link has none: the page gives it).
    titled: bool


def teaser(entry: RawEntry, min_chars: int) -> Teaser | None:
    """A ``Teaser`` when ``entry`` needs its article's full text, else None."""
    if min_chars <= 0 or not entry.link or not needs_full_text(entry, min_chars):
        return None
    return Teaser(entry.link, bool(entry.title.strip()))


def needs_full_text(entry: RawEntry, min_chars: int = DEFAULT_MIN_CHARS) -> bool:
    """True when ``entry`` has a link but less than ``min_chars`` of text."""
    if not entry.link:
        return False
    summary, body = html_to_text(entry.summary), html_to_text(entry.content)
    if summary in body:  # the teaser repeated in the content counts once
        summary = ""
    return len(summary) + len(body) < min_chars
