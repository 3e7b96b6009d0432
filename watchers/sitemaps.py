"""Sitemaps -> RawEntry list; a sitemap index -> its child sitemaps. Pure (no network).

Reads the three documents news sites publish under sitemaps.org:

* a Google News sitemap: ``<urlset>`` whose ``<url>`` entries carry
  ``<news:news>`` with ``news:title`` and ``news:publication_date``;
* a plain ``<urlset>``: ``loc`` and ``lastmod`` only, so entries have no title
  (the full-text step reads it from the page);
* a ``<sitemapindex>``: the child sitemaps, most recently modified first.

Elements are matched by local name, so the sitemaps that use an old or wrong
namespace still read. gzip-compressed sitemaps (``.xml.gz``, allowed by the
protocol) are inflated up to ``MAX_SITEMAP_BYTES``.

Safety: sitemaps are written by other people. The XML parser never substitutes
entities, never fetches a DTD or anything else, and keeps libxml2's size
limits, so a billion-laughs or external-entity (XXE) document is a
``ParseError``, not gigabytes of text or a local file read.

What it does not do: fetch the children of an index (the caller picks how many,
newest first), read image/video extensions, or consult robots.txt.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from lxml import etree

from metwatch.errors import ParseError
from metwatch.models import RawEntry

log = logging.getLogger(__name__)

#: The protocol's limit for one (uncompressed) sitemap file.
MAX_SITEMAP_BYTES = 50_000_000
_GZIP_MAGIC = b"\x1f\x8b"
_SCHEMES = ("http", "https")
#: Sorts undated children of an index after the dated ones.
_UNDATED = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Sitemap:
    """What a sitemap document holds: article entries, or (an index) other sitemaps."""

    entries: tuple[RawEntry, ...] = ()
    #: Child sitemap URLs of a ``<sitemapindex>``, most recently modified first.
    children: tuple[str, ...] = ()


def entries_from_sitemap(xml: bytes, url: str) -> list[RawEntry]:
    """The article entries of a ``<urlset>``; none for a ``<sitemapindex>``
    (use ``parse_sitemap`` to get its children).

    Raises:
        ParseError: as ``parse_sitemap``.
    """
    return list(parse_sitemap(xml, url).entries)


def parse_sitemap(xml: bytes, url: str, *, max_bytes: int = MAX_SITEMAP_BYTES) -> Sitemap:
    """Read a urlset (entries) or a sitemap index (children).

    Raises:
        ParseError: empty, malformed or unsafe XML (entity expansion), corrupt
            or oversized gzip, or a root element that is not a sitemap's.
    """
    root = _parse(_inflate(xml, url, max_bytes), url)
    kind = _local(root)
    if kind == "urlset":
        return Sitemap(entries=_entries(root, url))
    if kind == "sitemapindex":
        return Sitemap(children=_children(root, url))
    raise ParseError(f"not a sitemap: the root element is <{kind}>", url=url)


def _inflate(xml: bytes, url: str, max_bytes: int) -> bytes:
    if not xml.startswith(_GZIP_MAGIC):
        return xml
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        # Bounded: a gzip bomb stops at max_bytes + 1 instead of filling memory.
        data = inflater.decompress(xml, max_bytes + 1)
    except zlib.error as e:
        raise ParseError(f"corrupt gzip sitemap: {e}", url=url) from e
    if len(data) > max_bytes:
        limit = f"{max_bytes / 1_000_000:g} MB"
        raise ParseError(f"sitemap larger than {limit} once decompressed: not read", url=url)
    if not inflater.eof:  # zlib does not complain about a stream that stops short
        raise ParseError("corrupt gzip sitemap: the compressed data is truncated", url=url)
    return data


def _parse(xml: bytes, url: str) -> Any:
    if not xml.strip():
        raise ParseError("empty response: no sitemap in the body", url=url)
    # A parser per call: lxml parsers must not be shared between threads.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False
    )
    try:
        return etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as e:
        error = e
    if b"<!DOCTYPE" in xml[:4096]:  # an entity trick (billion laughs): refused as it stands
        raise ParseError(f"malformed sitemap XML: {error}", url=url) from error
    # Malformed (a bare "&" in a news:title is common): keep what can be read, as
    # for feeds, with the same refusals (no entities, no DTD, no network).
    recovering = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, recover=True
    )
    try:
        root = etree.fromstring(xml, recovering)
    except etree.XMLSyntaxError:
        root = None
    if root is None or _local(root) not in ("urlset", "sitemapindex"):
        raise ParseError(f"malformed sitemap XML: {error}", url=url) from error
    log.info("sitemap %s is malformed (%s); read what could be read", url, error)
    return root


def _entries(root: Any, url: str) -> tuple[RawEntry, ...]:
    entries: dict[str, RawEntry] = {}  # by link: a repeated <url> is kept once
    for element in _children_named(root, "url"):
        link = _link(url, _text(element, "loc"))
        if link is None or link in entries:
            continue
        news = _child(element, "news")
        title = "" if news is None else _text(news, "title")
        published = None if news is None else _date(_text(news, "publication_date"))
        entries[link] = RawEntry(
            guid=None, link=link, title=title, summary="", content="",
            published=published or _date(_text(element, "lastmod")),
        )  # fmt: skip
    return tuple(entries.values())


def _children(root: Any, url: str) -> tuple[str, ...]:
    found: dict[str, datetime] = {}
    for element in _children_named(root, "sitemap"):
        link = _link(url, _text(element, "loc"))
        if link is not None and link not in found:
            found[link] = _date(_text(element, "lastmod")) or _UNDATED
    # sorted() is stable, so children dated alike keep the index's order.
    return tuple(sorted(found, key=found.__getitem__, reverse=True))


def _local(element: Any) -> str:
    # Comments and processing instructions have a non-str tag and no local name.
    if not isinstance(element.tag, str):
        return ""
    # "{namespace}local"; a recovered document keeps an undeclared prefix in the
    # name ("image:image"), which QName refuses.
    return element.tag.rpartition("}")[2].rpartition(":")[2]


def _children_named(element: Any, name: str) -> list[Any]:
    return [child for child in element if _local(child) == name]


def _child(element: Any, name: str) -> Any | None:
    return next(iter(_children_named(element, name)), None)


def _text(element: Any, name: str) -> str:
    child = _child(element, name)
    return "" if child is None else " ".join("".join(child.itertext()).split())


def _link(base: str, loc: str) -> str | None:
    if not loc:
        return None
    try:
        link = urljoin(base, loc)
        scheme = urlsplit(link).scheme
    except ValueError:  # e.g. "http://[broken" is not a URL
        return None
    return link if scheme in _SCHEMES else None


def _date(text: str) -> datetime | None:
    """A W3C datetime (``2024-08-15``, ``2024-08-15T09:30:00+01:00``, ``...Z``) in UTC."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:  # a date alone, or a time without a zone: take it as UTC
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC, year 9999 west of it: no such date
        return None
