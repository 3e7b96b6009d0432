"""OPML in and out: moving feed lists between metwatch and feed readers. Pure.

``feeds_in_opml`` reads the feeds of an OPML file (any nesting of outlines:
readers group feeds in folders); ``sources_to_add`` turns them into rules-file
source entries (ids made from their titles, feeds the rules have already left
out); ``add_to_rules`` writes those entries into the rules file's text, leaving
every other byte of it as it was; ``opml_of`` writes sources as OPML 2.0.

OPML is XML from elsewhere, so it is parsed without entities, DTDs or network
access: a "billion laughs" file is refused, not expanded.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from lxml import etree
from ruamel.yaml import YAML

from metwatch.errors import MetwatchError
from metwatch.models import SourceSpec

#: Kinds a feed reader can read; page and sitemap sources are metwatch's own.
FEED_KINDS = ("feed", "search")
_ID_LENGTH = 60
_SOURCES_KEY = re.compile(r"^sources:[ \t]*(#.*)?$", re.MULTILINE)
_TOP_LEVEL = re.compile(r"^[^\s#-]", re.MULTILINE)
_ENTRY = re.compile(r"^([ \t]*)- ", re.MULTILINE)


class OpmlError(MetwatchError):
    """An OPML file that cannot be read, or a rules file it cannot be added to."""


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    title: str
    url: str


def feeds_in_opml(data: bytes, path: str) -> list[OpmlFeed]:
    """Every outline with an http(s) ``xmlUrl``, in document order, each URL once."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        raise OpmlError(f"{path}: not an OPML file: {e}") from None
    if root.tag != "opml" or root.find("body") is None:
        raise OpmlError(f"{path}: not an OPML file: no <opml><body>")
    if root.getroottree().docinfo.internalDTD is not None:
        raise OpmlError(f"{path}: an OPML file with a DTD is refused (entities are not expanded)")
    found: dict[str, str] = {}
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or "").strip()
        if url.lower().startswith(("http://", "https://")) and url not in found:
            title = outline.get("title") or outline.get("text") or url
            found[url] = " ".join(title.split())
    return [OpmlFeed(title, url) for url, title in found.items()]


def sources_to_add(
    feeds: Iterable[OpmlFeed], rules_text: str, *, interval: int
) -> tuple[list[dict[str, Any]], int]:
    """Source entries for the feeds the rules file does not list yet (by URL,
    disabled sources included), and how many were listed already."""
    existing = YAML(typ="safe").load(rules_text) or {}
    listed = (existing.get("sources") or []) if isinstance(existing, dict) else []
    urls = {s.get("url") for s in listed if isinstance(s, dict)}
    ids = {s.get("id") for s in listed if isinstance(s, dict)}
    entries: list[dict[str, Any]] = []
    known = 0
    for feed in feeds:
        if feed.url in urls:
            known += 1
            continue
        source_id = _unique_id(_slug(feed.title) or _slug(feed.url) or "feed", ids)
        ids.add(source_id)
        urls.add(feed.url)
        entries.append({"id": source_id, "name": feed.title, "url": feed.url,
                        "interval": interval})  # fmt: skip
    return entries, known


def entries_yaml(entries: Sequence[dict[str, Any]], indent: str = "  ") -> str:
    """The entries as block-sequence items indented by ``indent``, one key a line
    (ids bare: they are ``[a-z0-9-]`` only)."""
    lines = []
    for entry in entries:
        for n, (key, value) in enumerate(entry.items()):
            shown = value if key == "id" else _scalar(value)
            lines.append(f"{indent}{'- ' if n == 0 else '  '}{key}: {shown}")
    return "\n".join(lines) + "\n" if lines else ""


def add_to_rules(rules_text: str, entries: Sequence[dict[str, Any]]) -> str:
    """``rules_text`` with ``entries`` appended to its ``sources:`` list (or a new
    one at the end); the rest of the text is left byte for byte."""
    if not entries:
        return rules_text
    key = _SOURCES_KEY.search(rules_text)
    if key is None:
        if re.search(r"^sources:", rules_text, re.MULTILINE):
            raise OpmlError("the rules file's sources: is not a block list; add them by hand")
        return rules_text.rstrip("\n") + "\n\nsources:\n" + entries_yaml(entries)
    after = key.end()
    following = _TOP_LEVEL.search(rules_text, after + 1)
    end = following.start() if following else len(rules_text)
    block = rules_text[after:end]
    first = _ENTRY.search(block)
    indent = first.group(1) if first else "  "
    # After the last line of the last entry, not after the blank lines and
    # comments that introduce what follows.
    insert_at = after + _content_end(block)
    added = "\n" + entries_yaml(entries, indent).rstrip("\n")
    tail = rules_text[insert_at:]
    return rules_text[:insert_at] + added + (tail if tail else "\n")


def opml_of(sources: Iterable[SourceSpec], title: str, now: datetime) -> bytes:
    """OPML 2.0 listing the feed and search sources."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(now)
    body = etree.SubElement(root, "body")
    for spec in sources:
        if spec.kind in FEED_KINDS:
            etree.SubElement(body, "outline", type="rss", text=spec.name, title=spec.name,
                             xmlUrl=spec.url)  # fmt: skip
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _content_end(block: str) -> int:
    """Offset just after the last line of ``block`` that is neither blank nor a comment."""
    end = 0
    offset = 0
    for line in block.splitlines(keepends=True):
        offset += len(line)
        if line.strip() and not line.lstrip().startswith("#"):
            end = offset - (len(line) - len(line.rstrip("\r\n")))
    return end


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.sub(r"^https?://(www\.)?", "", ascii_text.lower())
    return re.sub(r"[^a-z0-9]+", "-", words).strip("-")[: _ID_LENGTH - 4].strip("-")


def _unique_id(base: str, taken: set[Any]) -> str:
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _scalar(value: object) -> str:
    """A YAML scalar: numbers bare, text double-quoted with what YAML does not
    allow raw (controls, line separators) escaped."""
    if isinstance(value, int):
        return str(value)
    out = []
    for char in str(value):
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'
