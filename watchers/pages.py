"""Sources without a feed: article links picked from a listing page. Pure (no network).

A ``page`` source names a listing page (a force's press-release index, a
newsroom) and a CSS selector for its article links. ``links_from_listing``
turns that page into ``RawEntry`` rows: one per distinct http(s) link, in page
order, with the link text as the title and nothing else; the article text
comes later, from the full-text step (``watchers.fulltext``).

``decode_html`` decodes HTML bytes as a browser would; the full-text step uses
it too.

What it does not do: fetch anything, follow "next page" links, run JavaScript
(a listing built by scripts yields no links), or guess a selector. When the
site's markup changes and the selector no longer matches, it raises
``ParseError`` so the source is reported as failing rather than going quiet.
"""

from __future__ import annotations

import codecs
import re
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import charset_normalizer
import lxml.html
from cssselect import SelectorError
from lxml.cssselect import CSSSelector
from lxml.etree import ParserError

from metwatch.errors import ParseError
from metwatch.models import RawEntry

_SCHEMES = ("http", "https")
# lxml refuses a str that still carries an encoding declaration (XHTML pages).
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")

_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([^;"'\s]+)""", re.IGNORECASE)
# <meta charset=x> and <meta http-equiv=content-type content="...; charset=x">.
_META_CHARSET = re.compile(r"""<meta[^>]+charset\s*=\s*["']?\s*([a-z0-9_.:-]+)""", re.IGNORECASE)
#: WHATWG: browsers look for <meta charset> in the first 1024 bytes only.
_META_WINDOW = 1024
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))  # fmt: skip
#: Labels the web treats as windows-1252 (WHATWG Encoding): pages declaring them
#: routinely contain curly quotes and dashes in bytes 0x80-0x9F.
_AS_WINDOWS_1252 = frozenset({"iso8859-1", "ascii"})
#: Chaos scores closer than this count as a tie between candidate encodings.
_TIE = 0.001


def links_from_listing(
    html: bytes, base_url: str, selector: str, content_type: str = ""
) -> list[RawEntry]:
    """Article links matched by ``selector`` on the listing page at ``base_url``.

    A matched element is the link itself (``a[href]``) or contains it (its first
    ``a[href]``). Relative links are resolved against the page (or its
    ``<base href>``); fragments are dropped; a link seen twice (image and
    headline) is kept once, with the first non-empty title.

    Raises:
        ParseError: the selector is invalid, the body is not an HTML page, or
            no http(s) link matched.
    """
    matcher = _compile(selector, base_url)
    root = _parse(html, base_url, content_type)
    base = _base_href(root, base_url)
    found: dict[str, str] = {}  # link -> title; dicts keep first-seen order
    for element in matcher(root):
        anchor = element if element.get("href") is not None else element.find(".//a[@href]")
        link = None if anchor is None else _absolute(base, anchor.get("href"))
        if link is not None and not found.get(link):
            found[link] = _title(anchor)
    if not found:
        raise ParseError(f"no links matched selector {selector!r} (has the page changed?)",
                         url=base_url)  # fmt: skip
    return [
        RawEntry(guid=None, link=link, title=title, summary="", content="", published=None)
        for link, title in found.items()
    ]


def selector_problem(selector: str) -> str | None:
    """Why ``selector`` cannot pick links, or None; lets ``rules check`` say so early."""
    try:
        _compile(selector, url="")
    except ParseError as e:
        return e.message
    return None


def decode_html(body: bytes, content_type: str = "") -> str:
    """Text of an HTML page, decoded as a browser would.

    In order: a byte-order mark, the header's charset, a ``<meta>`` charset in
    the first 1024 bytes, valid UTF-8, then a statistical guess.
    """
    encoding = (
        _bom(body)
        or _known(_first(_HEADER_CHARSET, content_type))
        or _known(_first(_META_CHARSET, body[:_META_WINDOW].decode("latin-1")))
        or _guess(body)
    )
    try:
        return body.decode(encoding, errors="replace")
    except UnicodeError:  # a codec that is no document charset ("idna", "punycode")
        return body.decode(_guess(body), errors="replace")


def _compile(selector: str, url: str) -> CSSSelector:
    try:
        # The html translator matches tag names case-insensitively, as browsers do.
        return CSSSelector(selector, translator="html")
    except SelectorError as e:
        raise ParseError(f"invalid CSS selector {selector!r}: {e}", url=url) from e


def _parse(html: bytes, url: str, content_type: str) -> Any:
    if not html.strip():
        raise ParseError("empty response: no page in the body", url=url)
    text = _XML_DECLARATION.sub("", decode_html(html, content_type), count=1)
    try:
        return lxml.html.document_fromstring(text)
    except (ParserError, ValueError) as e:
        raise ParseError(f"not an HTML page: {e}", url=url) from e


def _base_href(root: Any, page_url: str) -> str:
    base = root.find(".//base[@href]")
    return page_url if base is None else urljoin(page_url, base.get("href").strip())


def _absolute(base: str, href: str) -> str | None:
    """The absolute http(s) link without its fragment; None for mailto:, javascript: etc."""
    try:
        link, _ = urldefrag(urljoin(base, href.strip()))
        scheme = urlsplit(link).scheme
    except ValueError:  # e.g. "http://[broken" is not a URL
        return None
    return link if scheme in _SCHEMES and href.strip() else None


def _title(anchor: Any) -> str:
    text = " ".join(anchor.text_content().split())
    return text or " ".join((anchor.get("title") or "").split())


def _bom(body: bytes) -> str | None:
    return next((name for bom, name in _BOMS if body.startswith(bom)), None)


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1) if match else None


def _known(label: str | None) -> str | None:
    """The codec for a declared charset label; None when Python does not know it."""
    if not label:
        return None
    try:
        name = codecs.lookup(label).name
        # Refuses codecs that are not text encodings ("hex", "zlib"); not on b"",
        # which CPython decodes without looking at the codec.
        b"a".decode(name, errors="replace")
    except (LookupError, UnicodeError):  # UnicodeError: "undefined" refuses everything
        return None
    return "cp1252" if name in _AS_WINDOWS_1252 else name


def _guess(body: bytes) -> str:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    results = charset_normalizer.from_bytes(body)
    best = results.best()
    if best is None:
        return "cp1252"
    # Western and Central European code pages often fit English text equally well
    # (cp1250 reads "£" as "Ł"). On a tie, prefer windows-1252: the web's legacy
    # default for unlabelled pages and what UK news sites used before UTF-8.
    tied = (r for r in results if r.chaos <= best.chaos + _TIE)
    if any("cp1252" in r.could_be_from_charset for r in tied):
        return "cp1252"
    return best.encoding
