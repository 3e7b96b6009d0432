"""The proven subset: feed documents that feedparser and fastfeedparser read alike.

A document inside this subset takes the fast parser from a source's first poll;
any other well-formed document still needs the per-source proof of
``watchers.fastparse``. Membership is decided on the lxml tree that
``_well_formed_root`` builds anyway, plus a few looks at the raw bytes: one
walk over the channel's and the items' children, no second parse.

The subset is what UK news feeds use (BBC, Guardian, Independent, Sky,
WordPress), cut down to where feedparser 6.0.12's source and fastfeedparser
0.6.5's agree on the fields metwatch reads (title, link, id/guid, summary,
content, date, author). ``tests/watchers/test_feed_subset.py`` checks it
differentially with hypothesis on generated documents inside it.

In:

- UTF-8 documents that start with an XML declaration naming UTF-8 or no
  encoding; a Content-Type whose charset is absent or UTF-8 (for ``text/*``
  without a charset feedparser tries US-ASCII first, so the body must then be
  ASCII or declare UTF-8);
- RSS 2.0: ``<rss version="2.0">`` holding one ``<channel>``. Item children:
  ``title``, ``link``, ``guid`` (isPermaLink "true" or "false"),
  ``description``, ``pubDate``, ``author``, ``category`` (domain),
  ``comments``, ``enclosure``, ``source``, ``content:encoded``,
  ``dc:creator``, ``dc:date``, ``media:thumbnail``, and ``media:content``
  holding ``media:credit``;
- Atom 1.0: entry children ``id``, ``title``, ``link``, ``summary``,
  ``content`` (text constructs of type text or html), ``published``,
  ``updated``, ``author`` (``name``, ``uri``), ``category``, ``rights``;
- comments between elements; CDATA, character references and any character
  other than those listed below, in any text.

Out, with the reason (each rule has a negative test):

- malformed XML, a DOCTYPE (entities), encodings other than UTF-8: the fast
  parser truncates or repairs such documents, feedparser recovers differently;
- ``xml:base`` (or a ``base`` attribute) anywhere: feedparser resolves links
  and permalink GUIDs against it, fastfeedparser does not;
- any element or attribute in an item or entry not listed above, and channel
  children not on the channel's list: feedparser reads elements by name at any
  depth (``media:title`` and ``media:description`` are titles and summaries,
  ``rdf:about`` an id, an ``<item lastmod>`` a date, a ``type`` that is not
  text a base64 payload), fastfeedparser reads only an item's children by
  local name, so both must see only elements whose meaning they share;
- child nodes (elements, comments) inside a field: feedparser serialises
  markup and joins text around comments, the fast parser keeps the first text
  node only;
- a field given twice in one item (two titles, ``author`` and
  ``dc:creator``): feedparser keeps the last, fastfeedparser the first;
- empty or blank ``link``, ``guid`` or ``id``; an item with a link but no
  guid, or the reverse: fastfeedparser takes the link as the id (and the
  guid as the link), feedparser does neither (or the reverse for permalink
  GUIDs);
- an undated item whose guid does not start with http(s)://: fastfeedparser
  reads a date out of it ("a" is a date to dateutil);
- dates other than ``Tue, 14 May 2024 09:00:00 GMT`` (GMT, UT, UTC, the US
  zones or +hhmm) and ``2024-05-14T09:00:00[.ffffff](Z|+hh:mm)``, years
  1900-2099, real calendar days: the two date parsers disagree on other
  zone names (BST), on +hhmm in ISO dates, on 29 February of other years;
  other forms (hour 24, two-digit years, no seconds) are left out unexamined;
- ``content:encoded`` / Atom ``content`` without a non-blank description or
  summary, or equal to it: feedparser copies the content into the summary and
  keeps content equal to the summary; fastfeedparser writes its own summary
  from the content, and copies the summary into the content;
- link text with ``&name;`` (feedparser drops the semicolon), links and
  permalink GUIDs starting ``scheme:///`` (feedparser drops the extra
  slashes), Atom hrefs with surrounding space (the fast parser strips them);
- text holding C1 controls (feedparser maps them to cp1252), Latin-1-only text
  that is also valid UTF-8 when encoded (feedparser "repairs" it), U+2028,
  U+2029 (fastfeedparser turns them into newlines), U+E000 and U+E001 (its
  CDATA placeholders); noncharacters and anything past U+1FFFD (fastfeedparser's
  native reader is handed ``html.unescape``, which drops noncharacters; no
  difference was seen, they are out to be safe and one range is cheap to test).
  Written as themselves, these characters are looked for once in the bytes
  of the whole document (cheaper than in each text); written as character
  references, in each field's text;
- head bytes fastfeedparser takes for a broken header (``rss:`` without
  ``xmlns:rss``, ``utf-16``, ``??>``): it then rewrites the body.

Two differences the differential test finds (its first shrunk examples are a
``<description> </description>`` and a ``.000001`` second) are fixed in
``watchers.fastparse._entry`` rather than excluded, being adapter slips, not
parser disagreements: content is stripped (feedparser strips every text) and
dates keep whole seconds (feedparser's are time tuples).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
SY = "{http://purl.org/rss/1.0/modules/syndication/}"
MEDIA = "{http://search.yahoo.com/mrss/}"
_XML = "{http://www.w3.org/XML/1998/namespace}"
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class _Rule:
    """What an element may be: the entry field it ``fills`` (None: read by neither
    parser for metwatch), the attributes it may carry (None: any but a base),
    the values some of them may take, and its children (None: no child nodes).
    The text of an element that fills a field is checked for altered characters."""

    fills: str | None = None
    attributes: frozenset[str] | None = frozenset()
    values: Mapping[str, frozenset[str]] = field(default_factory=dict)
    children: Mapping[str, _Rule] | None = None
    #: Whether the field may be given more than once (Atom links, checked apart).
    repeats: bool = False


def _names(words: str, prefix: str = "") -> tuple[str, ...]:
    """Element or attribute names from a line of words, in a namespace."""
    return tuple(prefix + word for word in words.split())


_ANY_ATTRIBUTES = _Rule(attributes=None)
_TEXT_TYPES = {"type": frozenset({"text", "html"})}
_PERMALINK = {"isPermaLink": frozenset({"true", "false"})}
_MEDIA_CONTENT_ATTRIBUTES = frozenset(
    _names("url type medium width height fileSize duration expression isDefault lang bitrate")
)

_RSS_ITEM: dict[str, _Rule] = {
    "title": _Rule("title"),
    "link": _Rule("link"),
    "guid": _Rule("id", frozenset({"isPermaLink"}), _PERMALINK),
    "description": _Rule("summary"),
    "pubDate": _Rule("published"),
    "author": _Rule("author"),
    "category": _Rule(attributes=frozenset({"domain"})),
    "comments": _Rule(),
    "enclosure": _Rule(attributes=frozenset({"url", "length", "type"})),
    "source": _Rule(attributes=frozenset({"url"})),
    f"{CONTENT}encoded": _Rule("content"),
    f"{DC}creator": _Rule("author"),
    f"{DC}date": _Rule("updated"),
    f"{MEDIA}thumbnail": _Rule(attributes=frozenset({"url", "width", "height", "time"})),
    f"{MEDIA}content": _Rule(
        attributes=_MEDIA_CONTENT_ATTRIBUTES,
        children={f"{MEDIA}credit": _Rule(attributes=frozenset({"scheme", "role"}))},
    ),
}

_ATOM_AUTHOR = _Rule(children={f"{ATOM}name": _Rule("name"), f"{ATOM}uri": _Rule("uri")})
_ATOM_LINK_ATTRIBUTES = frozenset({"href", "rel", "type", "hreflang", "title", "length"})
_ATOM_ENTRY: dict[str, _Rule] = {
    f"{ATOM}id": _Rule("id"),
    f"{ATOM}title": _Rule("title", frozenset({"type"}), _TEXT_TYPES),
    f"{ATOM}link": _Rule("link", _ATOM_LINK_ATTRIBUTES, repeats=True),
    f"{ATOM}summary": _Rule("summary", frozenset({"type"}), _TEXT_TYPES),
    f"{ATOM}content": _Rule("content", frozenset({"type"}), _TEXT_TYPES),
    f"{ATOM}published": _Rule("published"),
    f"{ATOM}updated": _Rule("updated"),
    f"{ATOM}author": _ATOM_AUTHOR,
    f"{ATOM}category": _Rule(attributes=frozenset({"term", "scheme", "label"})),
    f"{ATOM}rights": _Rule(attributes=frozenset({"type"}), values=_TEXT_TYPES),
}

#: Feed-level children: read by neither parser into entries, except the refresh
#: hints, which only ``ttl`` and ``sy:*`` as direct children carry (none of the
#: containers here may hold one). Any attributes but a base.
_SY_HINTS = (f"{SY}updatePeriod", f"{SY}updateFrequency", f"{SY}updateBase")
_RSS_CHANNEL_LEAVES = (
    *_names("title link description language copyright managingEditor webMaster pubDate"),
    *_names("lastBuildDate category generator docs cloud ttl rating"),
    *_names("link", ATOM),
    *_SY_HINTS,
    *_names("language rights date creator publisher", DC),
)
_RSS_CHANNEL: dict[str, _Rule] = {
    **dict.fromkeys(_RSS_CHANNEL_LEAVES, _ANY_ATTRIBUTES),
    "image": _Rule(
        children=dict.fromkeys(_names("url title link width height description"), _Rule())
    ),
    "skipHours": _Rule(children={"hour": _Rule()}),
    "skipDays": _Rule(children={"day": _Rule()}),
}
_ATOM_FEED_LEAVES = (
    *_names("title subtitle id updated link generator icon logo rights category", ATOM),
    *_SY_HINTS,
)
_ATOM_FEED: dict[str, _Rule] = {
    **dict.fromkeys(_ATOM_FEED_LEAVES, _ANY_ATTRIBUTES),
    f"{ATOM}author": _Rule(children=dict.fromkeys(_names("name email uri", ATOM), _Rule())),
}

#: Characters one of the parsers changes: C1 controls (feedparser maps them to
#: cp1252), line and paragraph separators (fastfeedparser makes them newlines),
#: fastfeedparser's CDATA placeholders; and noncharacters, which ``html.unescape``
#: (handed to its native reader) drops. Past U+1FFFD the whole range is out,
#: noncharacters or not: one range is ten times cheaper to search than the 32
#: astral noncharacters.
_ALTERED_CHARACTERS = re.compile(
    "[\x80-\x9f\u2028\u2029\ue000\ue001\ufdd0-\ufdef\ufffe\uffff\U0001fffe-\U0010ffff]"
)
#: feedparser's ``urls._urifixer`` removes slashes after "scheme://".
_EXTRA_SLASHES = re.compile("^[A-Za-z][A-Za-z0-9+-.]*:///")
#: feedparser turns "&name;" in link text into "&name".
_LINK_REFERENCE = re.compile("&[A-Za-z0-9_]+;")
#: feedparser's ``encodings.RE_XML_PI_ENCODING``.
_DECLARED_ENCODING = re.compile(rb"^<\?.*encoding=['\"](.*?)['\"].*\?>")
_RFC822 = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) "
    r"([01]\d|2[0-3]):([0-5]\d):([0-5]\d) "
    r"(?:GMT|UTC|UT|EST|EDT|CST|CDT|MST|MDT|PST|PDT|[+-](?:[01]\d|2[0-3])[0-5]\d)",
    re.ASCII,
)
_ISO8601 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(?:\.\d{1,6})?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII,
)
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_UTF8_NAMES = frozenset({"utf-8", "utf8"})


def subset_violation(content: bytes, root: Any, content_type: str = "") -> str | None:
    """None when the document is inside the proven subset, else the first rule it
    breaks, in a few words (for tests and debug logs)."""
    problem = _bytes_violation(content, root, content_type)
    if problem:
        return problem
    try:
        _check_tree(root, _text_check(content))
    except _Outside as outside:
        return str(outside)
    return None


def in_subset(content: bytes, root: Any, content_type: str = "") -> bool:
    """Whether both parsers are proven to read this document alike (``root`` is
    its lxml tree, parsed without entities, as ``fastparse`` does)."""
    return subset_violation(content, root, content_type) is None


# -- bytes ----------------------------------------------------------------------------


def _bytes_violation(content: bytes, root: Any, content_type: str) -> str | None:
    body = content[len(_UTF8_BOM) :] if content.startswith(_UTF8_BOM) else content
    if not body.startswith(b"<?xml"):
        return "no XML declaration at the start"
    docinfo = root.getroottree().docinfo
    if docinfo.doctype:
        return "a DOCTYPE"
    if (docinfo.encoding or "").lower() not in _UTF8_NAMES:
        return f"encoding {docinfo.encoding}"
    if b"xml:base" in body:
        return "xml:base"
    if _looks_broken_to_fastfeedparser(body):
        return "a head fastfeedparser repairs"
    return _charset_violation(body, content_type) or _raw_characters_violation(body)


def _charset_violation(body: bytes, content_type: str) -> str | None:
    """feedparser decodes by the HTTP charset first (RFC 3023), then the declaration."""
    declared = _DECLARED_ENCODING.match(body)
    if declared and declared.group(1).decode("ascii", "replace").lower() not in _UTF8_NAMES:
        return "declared encoding is not UTF-8"
    media_type, _, parameters = content_type.partition(";")
    charset = _charset(parameters)
    if charset is not None:
        return None if charset in _UTF8_NAMES else f"charset {charset}"
    # text/* without a charset is US-ASCII to feedparser; a non-ASCII body then falls
    # to the declared encoding, or to guessing when none is declared.
    if media_type.strip().lower().startswith("text/") and not declared and not body.isascii():
        return "text/* without charset, no declared encoding and non-ASCII bytes"
    return None


def _charset(parameters: str) -> str | None:
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'").lower()
    return None


def _looks_broken_to_fastfeedparser(body: bytes) -> bool:
    """fastfeedparser's ``_prepare_xml_bytes`` test for a malformed header, after
    which it rewrites attributes and links across the whole body."""
    head = body[:1000].lower()
    return (
        b"?xml?xml" in head[:200]
        or b"??>" in body[:200]
        or (b"rss:" in head[:500] and b"xmlns:rss" not in head)
        or b"utf-16" in head[:200]
    )


# -- tree -----------------------------------------------------------------------------


class _Outside(Exception):
    """The document breaks a rule of the subset (the message says which)."""


def _check_tree(root: Any, alike: TextCheck) -> None:
    if root.tag == "rss":
        _check_rss(root, alike)
    elif root.tag == f"{ATOM}feed":
        _check_atom(root, alike)
    else:
        raise _Outside(f"root element {root.tag}")


def _check_rss(rss: Any, alike: TextCheck) -> None:
    if dict(rss.attrib) != {"version": "2.0"}:
        raise _Outside("rss attributes other than version 2.0")
    elements = [child for child in rss if isinstance(child.tag, str)]
    if [child.tag for child in elements] != ["channel"] or not _blank_text(rss):
        raise _Outside("rss holds other than one channel")
    channel = elements[0]
    if channel.attrib or not _blank_text(channel):
        raise _Outside("channel attributes or text")
    for child in channel:
        if child.tag == "item":
            _check_rss_item(_item_fields(child, _RSS_ITEM, alike))
        else:
            _check_feed_child(child, _RSS_CHANNEL, alike)


def _check_atom(feed: Any, alike: TextCheck) -> None:
    if set(feed.attrib) - {f"{_XML}lang"} or not _blank_text(feed):
        raise _Outside("feed attributes or text")
    for child in feed:
        if child.tag == f"{ATOM}entry":
            _check_atom_entry(child, _item_fields(child, _ATOM_ENTRY, alike), alike)
        else:
            _check_feed_child(child, _ATOM_FEED, alike)


def _check_feed_child(child: Any, rules: Mapping[str, _Rule], alike: TextCheck) -> None:
    if not isinstance(child.tag, str):
        return  # comments and processing instructions: neither parser reads them
    rule = rules.get(child.tag)
    if rule is None:
        raise _Outside(f"feed-level {child.tag}")
    _check_element(child, rule, alike)


def _item_fields(item: Any, rules: Mapping[str, _Rule], alike: TextCheck) -> dict[str, Any]:
    """The element of each field of an item (entry), once every child is known,
    well-shaped and each field is given once (only Atom links repeat; the first
    is kept). One pass, the common case inline: it runs on every child of every
    item, where each call and each lxml attribute costs."""
    text = item.text
    if item.keys() or text and not text.isspace():
        raise _Outside("item attributes or text")
    fields: dict[str, Any] = {}
    for child in item:
        tail = child.tail
        if tail and not tail.isspace():
            raise _Outside("text in an item")
        tag = child.tag
        rule = rules.get(tag)
        if rule is None:
            if isinstance(tag, str):
                raise _Outside(f"{tag} in an item")
            continue  # comments, processing instructions
        if rule.children is None:
            _check_leaf(child, rule, alike)
        else:
            _check_element(child, rule, alike)
        fills = rule.fills
        if fills is None:
            continue
        if fills not in fields:
            fields[fills] = child
        elif not rule.repeats:
            raise _Outside(f"two {fills} elements in an item")
    return fields


def _check_element(element: Any, rule: _Rule, alike: TextCheck) -> None:
    if rule.children is None:
        _check_leaf(element, rule, alike)
        return
    if element.keys():
        _check_attributes(element, rule)
    _check_container(element, rule.children, alike)


def _check_leaf(element: Any, rule: _Rule, alike: TextCheck) -> None:
    if rule.attributes is None or element.keys():  # keys(): a list, cheaper than .attrib
        _check_attributes(element, rule)
    if len(element):
        raise _Outside(f"child nodes in {element.tag}")
    if rule.fills:
        text = element.text
        if text and not text.isascii() and not alike(text):
            raise _Outside(f"characters one parser changes in {element.tag}")


def _check_attributes(element: Any, rule: _Rule) -> None:
    attributes = element.attrib
    if rule.attributes is None:
        if _has_base(attributes):
            raise _Outside("a base attribute")
        return
    if not rule.attributes.issuperset(attributes):
        raise _Outside(f"attributes of {element.tag}")
    for name, allowed in rule.values.items():
        value = attributes.get(name)
        if value is not None and value not in allowed:
            raise _Outside(f"{name}={value!r} on {element.tag}")


def _check_container(element: Any, children: Mapping[str, _Rule], alike: TextCheck) -> None:
    if not _blank_text(element):
        raise _Outside(f"text in {element.tag}")
    seen: set[str] = set()
    for child in element:
        if not isinstance(child.tag, str):
            continue
        rule = children.get(child.tag)
        if rule is None:
            raise _Outside(f"{child.tag} in {element.tag}")
        if rule.fills in seen:
            raise _Outside(f"two {rule.fills} in {element.tag}")
        if rule.fills:
            seen.add(rule.fills)
        _check_element(child, rule, alike)


# -- fields ---------------------------------------------------------------------------

_HTTP = ("http://", "https://")
_OTHER_LINK_RELATIONS = frozenset({"enclosure", "related", "replies", "self", "edit", "via",
                                   "license"})  # fmt: skip


def _check_rss_item(fields: Mapping[str, Any]) -> None:
    guid = fields.get("id")
    _check_identity(fields.get("link"), guid, permalink=_is_permalink(guid))
    dated = "published" in fields or "updated" in fields
    if not dated and guid is not None and not (guid.text or "").startswith(_HTTP):
        # fastfeedparser reads a date out of such a guid, where feedparser has none.
        raise _Outside("an undated item whose guid is not a URL")
    _check_dates(fields)
    _check_content(fields)


def _check_atom_entry(entry: Any, fields: Mapping[str, Any], alike: TextCheck) -> None:
    links = [child for child in entry if child.tag == f"{ATOM}link"]
    _check_atom_links(links, alike)
    # feedparser takes an Atom id for a permalink guid (it is the same code), so
    # resolves it as a link.
    _check_identity(links[0] if links else None, fields.get("id"), permalink=True)
    _check_dates(fields)
    _check_content(fields)
    if sum(1 for child in entry if child.tag == f"{ATOM}author") > 1:
        raise _Outside("two Atom authors")  # feedparser keeps the last, fastfeedparser the first


def _check_atom_links(links: list[Any], alike: TextCheck) -> None:
    """One alternate link, first (fastfeedparser takes the first href when no link
    says rel="alternate"), of an HTML type (feedparser's test); the others' rels are
    known ones, and every link has an href (feedparser reads an href-less link's text)."""
    for position, link in enumerate(links):
        href = link.get("href") or ""
        if not href or href != href.strip() or not alike(href):
            raise _Outside("an Atom link href that is empty, padded or changed")
        rel = link.get("rel")
        if position == 0:
            if rel not in (None, "alternate") or link.get("type") not in (None, "text/html"):
                raise _Outside("an Atom entry whose first link is not its HTML alternate")
        elif rel not in _OTHER_LINK_RELATIONS:
            raise _Outside(f"a second Atom link with rel {rel!r}")


def _is_permalink(guid: Any | None) -> bool:
    return guid is not None and guid.get("isPermaLink", "true") == "true"


def _check_identity(link: Any | None, guid: Any | None, *, permalink: bool) -> None:
    if (link is None) != (guid is None):
        raise _Outside("a link without a guid, or a guid without a link")
    if link is None or guid is None:
        return
    atom = link.tag == f"{ATOM}link"
    link_text = ((link.get("href") if atom else link.text) or "").strip()
    guid_text = (guid.text or "").strip()
    if not link_text or not guid_text:
        raise _Outside("an empty link or guid")
    if _EXTRA_SLASHES.match(link_text) or permalink and _EXTRA_SLASHES.match(guid_text):
        raise _Outside("a link or permalink guid with slashes feedparser removes")
    if not atom and "&" in link_text and _LINK_REFERENCE.search(link_text):
        raise _Outside("&name; in link text")


def _check_dates(fields: Mapping[str, Any]) -> None:
    for name in ("published", "updated"):
        element = fields.get(name)
        if element is not None and not _is_plain_date((element.text or "").strip()):
            raise _Outside(f"a date ({name}) outside the two strict formats")


def _check_content(fields: Mapping[str, Any]) -> None:
    content = fields.get("content")
    if content is None:
        return
    summary = fields.get("summary")
    summary_text = "" if summary is None else (summary.text or "").strip()
    if not summary_text:
        raise _Outside("content without a summary")
    if (content.text or "").strip() == summary_text:
        raise _Outside("content equal to the summary")


def _is_plain_date(text: str) -> bool:
    """RFC 822 as RSS writes it, or ISO 8601 with seconds and a zone, on a real day."""
    rfc822 = _RFC822.fullmatch(text)
    if rfc822:
        day, month, year = int(rfc822[1]), _MONTHS[rfc822[2]], int(rfc822[3])
    else:
        iso = _ISO8601.fullmatch(text)
        if not iso:
            return False
        year, month, day = int(iso[1]), int(iso[2]), int(iso[3])
    if not 1900 <= year <= 2099:
        return False
    if day <= 28:  # every month has it: no need to build a date
        return True
    try:
        datetime(year, month, day)  # noqa: DTZ001 (only the calendar is checked)
    except ValueError:
        return False
    return True


# -- text -----------------------------------------------------------------------------

#: Whether neither parser changes a (non-ASCII) text on its way to a field.
TextCheck = Callable[[str], bool]

#: The lead bytes of the UTF-8 of the characters one parser changes, and what
#: follows them then (see ``_ALTERED_CHARACTERS``): C1 controls; fastfeedparser's
#: placeholders; noncharacters in the BMP; anything past U+1FFFD.
_ALTERED_AFTER_LEAD = {
    b"\xc2": re.compile(b"\xc2[\x80-\x9f]"),
    b"\xee": re.compile(b"\xee\x80[\x80\x81]"),
    b"\xef": re.compile(b"\xef\xb7[\x90-\xaf]|\xef\xbf[\xbe\xbf]"),
    b"\xf0": re.compile(b"\xf0\x9f\xbf[\xbe\xbf]|\xf0[\xa0-\xbf]"),  # U+1FFFE/F, planes 2-3
    b"\xf1": re.compile(b"\xf1"),
    b"\xf2": re.compile(b"\xf2"),
    b"\xf3": re.compile(b"\xf3"),
    b"\xf4": re.compile(b"\xf4"),
}
_SEPARATORS = re.compile(b"\xe2\x80[\xa8\xa9]")


def _raw_characters_violation(body: bytes) -> str | None:
    """A character one parser changes, written as itself anywhere in the document.

    On the bytes, once, rather than on each text: a lead byte is found at memchr
    speed, and only a lead byte that occurs sends a regex over the body.
    """
    if _SEPARATORS.search(body):
        return "a line or paragraph separator"
    for lead, altered in _ALTERED_AFTER_LEAD.items():
        if lead in body and altered.search(body):
            return "characters one parser changes"
    return None


def _text_check(body: bytes) -> TextCheck:
    """How much each text still needs checking once ``_raw_characters_violation``
    passed: all of ``_reads_alike`` when character references may write any
    character; the Latin-1 test when raw U+0080-U+00FF occur; nothing else."""
    if _has_character_reference(body):
        return _reads_alike
    if b"\xc2" in body or b"\xc3" in body:
        return _not_latin1_utf8
    return _anything


def _has_character_reference(body: bytes) -> bool:
    # "#" is rare in feeds and found at memchr speed; "&" is everywhere in escaped HTML.
    hash_mark = body.find(b"#")
    while hash_mark != -1:
        if body[hash_mark - 1 : hash_mark] == b"&":
            return True
        hash_mark = body.find(b"#", hash_mark + 1)
    return False


def _anything(text: str) -> bool:
    return True


def _reads_alike(text: str) -> bool:
    """Whether neither parser changes this text on its way to a field."""
    if text.isascii():
        return True
    return not _ALTERED_CHARACTERS.search(text) and _not_latin1_utf8(text)


def _not_latin1_utf8(text: str) -> bool:
    """feedparser "repairs" UTF-8 read as Latin-1: text that is all Latin-1 and
    whose Latin-1 bytes are valid UTF-8 comes out decoded again."""
    try:
        text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return True
    return text.isascii()


def _blank_text(element: Any) -> bool:
    """No text directly in ``element`` (between its children either)."""
    if element.text and not element.text.isspace():
        return False
    return all(not child.tail or child.tail.isspace() for child in element)


def _has_base(attributes: Any) -> bool:
    return any(name in ("base", f"{_XML}base") for name in attributes)
