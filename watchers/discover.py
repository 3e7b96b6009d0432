"""Feed discovery: the feeds an HTML page names for itself. Pure (no network).

A site's pages announce their feeds in the head, as browsers and feed readers
expect: ``<link rel="alternate" type="application/rss+xml" href="...">``. When
a source's URL is a page rather than its feed (a common first try when adding
a source), the error says which feeds the page names, so the fix is a copy and
paste; ``metwatch preview`` lists them too.

Only what the page declares is reported: no guessing of paths such as /feed,
which would mean fetching addresses nobody gave.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit

import lxml.html
from lxml.etree import ParserError

from watchers.pages import decode_html

#: Feed types metwatch reads (JSON Feed is not among them).
FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml",
     "text/xml"}
)  # fmt: skip
#: A page naming more feeds than this lists its categories; the first ones do.
MAX_FEEDS = 10
#: Longer feed URLs are left out of the hint: it is stored and shown as the
#: source's last error, and a page must not fill that with kilobytes of address.
HINT_URL_MAX = 300


@dataclass(frozen=True, slots=True)
class FeedLink:
    url: str
    title: str


def feeds_named_by(html: bytes, page_url: str, content_type: str = "") -> list[FeedLink]:
    """The RSS/Atom feeds the page at ``page_url`` names, in page order, each once."""
    try:
        root = lxml.html.document_fromstring(decode_html(html, content_type).lstrip())
    except (ParserError, ValueError):
        return []
    base_tag = root.find(".//base[@href]")
    base = page_url if base_tag is None else _absolute(page_url, base_tag.get("href").strip())
    found: dict[str, str] = {}
    for link in root.iter("link"):
        rels = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").split(";")[0].strip().lower()
        href = (link.get("href") or "").strip()
        if "alternate" not in rels or kind not in FEED_TYPES or not href:
            continue
        url = _absolute(base or page_url, href)
        if url is not None and url not in found:
            found[url] = " ".join((link.get("title") or "").split())
    return [FeedLink(url, title) for url, title in list(found.items())[:MAX_FEEDS]]


def discovery_hint(html: bytes, page_url: str, content_type: str = "") -> str:
    """ "the page names its feed: URL" (or feeds), or "" when it names none."""
    feeds = [f for f in feeds_named_by(html, page_url, content_type) if len(f.url) <= HINT_URL_MAX]
    if not feeds:
        return ""
    if len(feeds) == 1:
        return f"the page names its feed: {feeds[0].url}"
    return "the page names these feeds: " + ", ".join(f.url for f in feeds)


def _absolute(base: str, href: str) -> str | None:
    try:
        url, _ = urldefrag(urljoin(base, href))
        return url if urlsplit(url).scheme in ("http", "https") else None
    except ValueError:  # "http://[broken" is not a URL
        return None
