"""RawEntry -> Item: plain text, canonical link, stable identity. Pure.

Identity, in order of preference (as miniflux and reader do it):

1. the entry's GUID, scoped to its source, when the feed gives one;
2. else the canonical link (scheme and host lower-cased, tracking parameters
   such as utm_*, fbclid and gclid removed, AMP variants folded, fragment
   dropped), which is also how the same article in two feeds is recognised;
3. else a digest of title and text.

An edited title or summary keeps the id (the id never depends on them when a
GUID or link exists); ``content_hash`` lets the store notice the edit.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote_plus, urlencode, urlsplit, urlunsplit

import lxml.html
from lxml.etree import ParserError

from metwatch.models import Item, RawEntry, SourceSpec

_TRACKING_PARAMS = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|igshid|"
    r"ocid|cmpid|at_medium|at_campaign|at_custom\d|ito|_ga|ref_src|smid|s_cid|"
    r"outputtype|amp)$",
    re.IGNORECASE,
)
_BLOCK_TAGS = ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "blockquote", "tr")


def canonical_url(url: str) -> str:
    """The link with tracking noise and AMP variants removed, for identity."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if host.startswith("amp."):
        host = host[4:]
    if ":" in host:  # an IPv6 address: hostname drops its brackets
        host = f"[{host}]"
    if parts.port and not (
        (scheme == "http" and parts.port == 80) or (scheme == "https" and parts.port == 443)
    ):
        host = f"{host}:{parts.port}"
    path = re.sub(r"/amp/?$|\.amp$|\.amp(?=\.html?$)", "", parts.path) or "/"
    path = re.sub(r"/amp/", "/", path)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    query = [(k, v) for k, v in query if not _TRACKING_PARAMS.match(k)]
    return urlunsplit((scheme, host, path, urlencode(query), ""))


#: What a URL's path and query may hold as it is: reserved and unreserved
#: characters, and "%" (escapes already made).
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


def shown_link(url: str) -> str:
    """The link as published, less its tracking parameters and fragment: what
    subscribers are shown. Unlike ``canonical_url`` it re-encodes nothing, keeps
    the host as given (an AMP host serves the page) and valueless parameters
    (``?12345``) as they are: a link rewritten for identity can break."""
    parts = urlsplit(url.strip())
    kept = [p for p in parts.query.split("&") if p and not _TRACKING_PARAMS.match(_key(p))]
    # Without user info ("https://bbc.co.uk@evil.example/" shows one host, opens
    # another); characters a URL cannot hold (a space, non-ASCII) percent-encoded,
    # escapes already there kept: a link with a raw space does not reach the chat.
    host = parts.netloc.rpartition("@")[2]
    path, query = (quote(part, safe=_URL_SAFE) for part in (parts.path, "&".join(kept)))
    return urlunsplit((parts.scheme, host, path, query, ""))


def _key(parameter: str) -> str:
    return unquote_plus(parameter.split("=", 1)[0])


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment, one paragraph per block element."""
    if "<" not in fragment and "&" not in fragment:
        return " ".join(fragment.split())
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (ParserError, ValueError):
        return " ".join(fragment.split())
    for tag in root.iter(*_BLOCK_TAGS):
        tag.tail = "\n" + (tag.tail or "")
    for bad in root.iter("script", "style"):
        bad.drop_tree()
    text = root.text_content()
    paragraphs = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(p for p in paragraphs if p)


def normalise_unicode(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def identity_basis(entry: RawEntry) -> Literal["guid", "link", "text"]:
    """What an entry's identity rests on (see module docstring)."""
    if entry.guid and entry.guid.strip():
        return "guid"
    return "link" if entry.link else "text"


def item_id(source_id: str, entry: RawEntry) -> str:
    """Stable identity of an entry (see module docstring)."""
    basis = identity_basis(entry)
    if basis == "guid":
        return _digest("guid", source_id, (entry.guid or "").strip())
    if basis == "link":
        return _digest("url", canonical_url(entry.link or ""))
    return _digest("text", source_id, entry.title, entry.summary, entry.content)


def normalise(entry: RawEntry, source: SourceSpec, now: datetime) -> Item:
    """Turn a parsed entry into an Item; a date in the future is clamped to ``now``.

    A link that cannot be read as a URL (a port past 65535, a broken IPv6 host) is
    dropped: the entry is kept, identified by its GUID or its text, and the rest
    of the feed is not lost to one typo.
    """
    url = _canonical(entry.link)
    if entry.link and url is None:
        entry = replace(entry, link=None)
    link = shown_link(entry.link) if url is not None and entry.link else None
    title = normalise_unicode(html_to_text(entry.title))
    summary = normalise_unicode(html_to_text(entry.summary))
    body = normalise_unicode(html_to_text(entry.content))
    if summary and body.startswith(summary):
        summary = ""
    published = entry.published
    if published is not None and published > now:
        published = now
    return Item(
        id=item_id(source.id, entry),
        source_id=source.id,
        outlet=source.name,
        url=url,
        title=title or "(untitled)",
        summary=summary,
        body=body,
        published=published,
        content_hash=_digest(title, summary, body),
        link=link if link != url else None,
    )


def _canonical(link: str | None) -> str | None:
    """The canonical link, None when there is none or it is not a readable URL."""
    if not link:
        return None
    try:
        return canonical_url(link)
    except ValueError:
        return None


def utc_now() -> datetime:
    return datetime.now(UTC)


def first_of_each(items: Sequence[Item]) -> list[int]:
    """Positions of the items a poll of a new source keeps from one body: a repeat
    of an earlier item's id, or of its canonical link under another id, is dropped
    (the store keeps one item per link; ``ItemStore.sort_new`` does the same with
    what is stored). For ``metwatch preview``, which has no store."""
    ids: set[str] = set()
    urls: set[str] = set()
    kept: list[int] = []
    for n, item in enumerate(items):
        if item.id in ids or (item.url and item.url in urls):
            continue
        ids.add(item.id)
        if item.url:
            urls.add(item.url)
        kept.append(n)
    return kept
