"""Single articles given by hand (file, URL or stdin) -> RawEntry.

Input kinds, as ``metwatch classify`` and ``metwatch replay`` accept them:
plain text with the headline on the first line, or HTML (its main text is
extracted with trafilatura, the title taken from the page).
"""

from __future__ import annotations

from datetime import datetime

import trafilatura

from metwatch.models import RawEntry


def looks_like_html(text: str) -> bool:
    head = text.lstrip()[:500].lower()
    return head.startswith(("<!doctype html", "<html")) or "<body" in head or "<p>" in head


def article_from_text(
    text: str, *, link: str | None = None, headline: str | None = None,
    published: datetime | None = None,
) -> RawEntry:  # fmt: skip
    """Plain text (headline on the first line unless given) or HTML -> RawEntry."""
    if looks_like_html(text):
        return article_from_html(text, link=link, published=published)
    if headline is None:
        headline, _, body = text.strip().partition("\n")
    else:
        body = text
    return RawEntry(
        guid=None, link=link, title=headline.strip(), summary="", content=body.strip(),
        published=published,
    )  # fmt: skip


def article_from_html(
    page: str, *, link: str | None = None, published: datetime | None = None
) -> RawEntry:
    """Main text of an article page, without navigation, ads or comments."""
    body = trafilatura.extract(page, include_comments=False, include_tables=False) or ""
    meta = trafilatura.extract_metadata(page)
    title = (meta.title if meta is not None and meta.title else "") or ""
    return RawEntry(
        guid=None, link=link, title=title, summary="", content=body, published=published
    )
