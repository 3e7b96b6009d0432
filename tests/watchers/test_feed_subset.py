"""Inside the proven subset, fastfeedparser reads a document as feedparser does.

A differential property test: hypothesis writes RSS 2.0 and Atom 1.0 documents
inside the subset of ``watchers.feed_subset`` (real parsers on real bytes, no
mocks) with the corners that break parsers: astral and accented characters,
escaped and CDATA HTML, character references, padding, markup in titles,
missing optional elements, several date formats and zones, relative links,
repeated elements, comments, empty texts. For each: the check accepts it, and
the fast reading equals ``parse_feed``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchers.fastparse import _well_formed_root, read_unproven
from watchers.feed_subset import subset_violation
from watchers.parse import parse_feed

URL = "https://news.example.com/feeds/uk.xml"
NAMESPACES = (
    ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:media="http://search.yahoo.com/mrss/"'
    ' xmlns:atom="http://www.w3.org/2005/Atom"'
    ' xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"'
)
# Deterministic in CI, no deadline (feedparser's first call imports a lot), and a
# budget that keeps the file at a few seconds.
DIFFERENTIAL = settings(
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- characters -----------------------------------------------------------------------


def _xml_char(c: str) -> bool:
    """XML 1.0 allows it, and the subset does (no C1, separators, placeholders,
    noncharacters, nothing past U+1FFFD)."""
    n = ord(c)
    if n < 0x20:
        return c in "\t\n\r"
    return not (
        0x7F < n < 0xA0
        or n in (0x2028, 0x2029, 0xE000, 0xE001)
        or 0xD800 <= n <= 0xDFFF
        or 0xFDD0 <= n <= 0xFDEF
        or n in (0xFFFE, 0xFFFF)
        or n >= 0x1FFFE
    )


def _not_misdecoded(text: str) -> bool:
    """feedparser re-decodes Latin-1-only text that is valid UTF-8: out of the subset."""
    try:
        text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return True
    return text.isascii()


#: Plain letters, XML's specials, accents, typographic quotes, CJK, emoji and
#: other astral characters, whitespace of several kinds.
_ALPHABET = st.one_of(
    st.sampled_from("abcXYZ 019-_.,:;!?/#%=+"),
    st.sampled_from("&<>\"'"),
    st.sampled_from("éèüßñçÀ£©°½’‘“”–—…€™"),
    st.sampled_from("中文日本語한국어Ωπ"),
    st.sampled_from("😀🇬🇧𝔘𐍈🀄"),
    st.sampled_from(" \t\n\r\u00a0\u2009\u3000"),
    st.characters(min_codepoint=0x20, max_codepoint=0x1FFFD).filter(_xml_char),
)
_TEXT = st.text(_ALPHABET, max_size=30).filter(_not_misdecoded)
_WORDS = st.text(st.sampled_from("abcdefghij KLMN’é"), min_size=1, max_size=20)


def _reference(c: str, hexadecimal: bool) -> str:
    return f"&#x{ord(c):X};" if hexadecimal else f"&#{ord(c)};"


@st.composite
def _escaped(draw: st.DrawFn, text: str) -> str:
    """``text`` as XML character data: escaped, some characters as references,
    or in CDATA sections (split where it holds "]]>")."""
    form = draw(st.sampled_from(["escape", "references", "cdata", "mixed"]))
    if form == "cdata" and text and "]]>" not in text and "\r" not in text:
        return f"<![CDATA[{text}]]>"
    if form == "escape" or not text:
        return escape(text, {'"': "&quot;", "'": "&apos;"}).replace("\r", "&#13;")
    out = []
    for c in text:
        if form == "references" or draw(st.booleans()):
            out.append(_reference(c, draw(st.booleans())))
        elif c == "\r":
            out.append("&#13;")  # a raw CR would be read as a newline by both
        else:
            out.append(escape(c))
    return "".join(out)


@st.composite
def _padded(draw: st.DrawFn, text: str) -> str:
    pad = st.text(st.sampled_from(" \n\t"), max_size=3)
    return draw(pad) + text + draw(pad)


@st.composite
def _html(draw: st.DrawFn) -> str:
    """Article HTML as feeds write it, to be escaped or put in CDATA."""
    parts = draw(
        st.lists(
            st.one_of(
                _TEXT,
                _TEXT.map(lambda t: f"<p>{t}</p>"),
                st.tuples(_TEXT, _TEXT).map(lambda p: f'<a href="/x?a=1&amp;b={p[0]}">{p[1]}</a>'),
                st.sampled_from(
                    ["<br/>", "<b>", "</b>", "&nbsp;", "&amp;", "&#8217;", "<img src=x>"]
                ),
            ),
            max_size=6,
        )
    )
    return "".join(parts)


# -- values ---------------------------------------------------------------------------

_ZONES = st.sampled_from([0, 60, -300, 330, 345, -210, 14 * 60, -12 * 60, 23 * 60 + 59])
_MOMENTS = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2099, 12, 30))
_RFC822_NAMES = {"GMT": 0, "UT": 0, "UTC": 0, "EST": -300, "EDT": -240, "CST": -360,
                 "CDT": -300, "MST": -420, "MDT": -360, "PST": -480, "PDT": -420}  # fmt: skip


@st.composite
def _date(draw: st.DrawFn) -> str:
    """A date in one of the subset's two formats: RFC 822 (numeric or named zone,
    with or without a weekday, one- or two-digit day) or ISO 8601 (Z or an
    offset, with or without a fraction)."""
    moment = draw(_MOMENTS)
    if draw(st.booleans()):
        name = draw(st.sampled_from([None, *_RFC822_NAMES]))
        minutes = draw(_ZONES) if name is None else _RFC822_NAMES[name]
        when = moment.replace(tzinfo=timezone(timedelta(minutes=minutes)))
        zone = name or when.strftime("%z")
        day = f"{when.day:02d}" if draw(st.booleans()) else str(when.day)
        weekday = when.strftime("%a, ") if draw(st.booleans()) else ""
        return f"{weekday}{day} {when:%b %Y %H:%M:%S} {zone}"
    minutes = draw(_ZONES)
    when = moment.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    digits = draw(st.sampled_from([0, 1, 3, 6]))
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{when.microsecond:06d}"[:digits]
    zone = when.strftime("%z")
    return text + ("Z" if minutes == 0 and draw(st.booleans()) else f"{zone[:3]}:{zone[3:]}")


_PATH = st.text(st.sampled_from("abcz019-_~.%/é中"), min_size=1, max_size=15)
_QUERY = st.sampled_from(["", "?id=1", "?a=1&b=2", "?q=caf%C3%A9&x=;", "#top", "?utm_source=rss"])


@st.composite
def _link(draw: st.DrawFn) -> str:
    """Absolute links on several hosts and schemes, and relative ones (resolved
    against the feed's URL by metwatch)."""
    path, query = draw(_PATH), draw(_QUERY)
    form = draw(st.sampled_from(["https", "http", "root", "relative", "scheme-relative"]))
    if form in ("https", "http"):
        host = draw(st.sampled_from(["news.example.com", "EXAMPLE.org:8080", "bücher.example"]))
        return f"{form}://{host}/{path}{query}"
    if form == "root":
        return f"/{path}{query}"
    if form == "scheme-relative":
        return f"//cdn.example.com/{path}{query}"
    return f"{path}{query}"


@dataclass(frozen=True)
class _Item:
    """One generated item (entry): its children, in document order."""

    children: tuple[str, ...]


def _element(name: str, inner: str, attributes: str = "") -> str:
    return f"<{name}{attributes}>{inner}</{name}>"


@st.composite
def _text_element(draw: st.DrawFn, name: str, text: st.SearchStrategy[str]) -> str:
    value = draw(text)
    if not value and draw(st.booleans()):
        return f"<{name}/>"
    return _element(name, draw(_escaped(draw(_padded(value)))))


@st.composite
def _identity(draw: st.DrawFn, dated: bool) -> tuple[str, str] | None:
    """(link, guid) text, or None for an item with neither. An undated item's guid
    is a URL (fastfeedparser would read a date out of other text)."""
    if draw(st.integers(0, 9)) == 0:
        return None
    link = draw(_link())
    if not dated or draw(st.booleans()):
        guid = link if draw(st.booleans()) else draw(_link()).replace("/", "/g/", 1)
        if not dated and not guid.startswith(("http://", "https://")):
            guid = "https://guid.example.com/" + guid
    else:
        guid = draw(st.sampled_from(["urn:uuid:", "tag:example.com,2024:", "", "news-"]))
        guid += draw(st.text(st.sampled_from("abc0129-:/é"), min_size=1, max_size=12))
    return link, guid


# -- RSS 2.0 --------------------------------------------------------------------------


@st.composite
def _rss_item(draw: st.DrawFn) -> _Item:
    children: list[str] = []
    dates = draw(st.sampled_from(["pubDate", "dc:date", "both", "none"]))
    dated = dates != "none"
    if dates in ("pubDate", "both"):
        children.append(_element("pubDate", draw(_padded(draw(_date())))))
    if dates in ("dc:date", "both"):
        children.append(_element("dc:date", draw(_padded(draw(_date())))))
    identity = draw(_identity(dated))
    if identity is not None:
        link, guid = identity
        children.append(_element("link", draw(_padded(escape(link)))))
        permalink = draw(st.sampled_from(["", ' isPermaLink="true"', ' isPermaLink="false"']))
        # An undated item's guid must start with its scheme: no padding before it.
        guid_text = draw(_padded(guid)) if dated else guid + draw(_padded(""))
        children.append(_element("guid", draw(_escaped(guid_text)), permalink))
    if draw(st.booleans()):
        title = draw(st.one_of(_TEXT, _html()))  # markup in titles, as text
        children.append(draw(_text_element("title", st.just(title))))
    description = draw(st.one_of(st.none(), _html(), _TEXT))
    if description is not None:
        children.append(draw(_text_element("description", st.just(description))))
    if description and description.strip() and draw(st.booleans()):
        content = draw(_html().filter(lambda c: c.strip() != description.strip()))
        children.append(_element("content:encoded", draw(_escaped(draw(_padded(content))))))
    author = draw(st.sampled_from([None, "author", "dc:creator"]))
    if author:
        children.append(draw(_text_element(author, st.one_of(_WORDS, _TEXT))))
    children += draw(st.lists(_rss_extra(), max_size=4))
    return _Item(tuple(draw(st.permutations(children))))


def _rss_extra() -> st.SearchStrategy[str]:
    """Elements neither parser reads for metwatch, repeated at will."""
    url = _link().map(quoteattr)
    return st.one_of(
        st.tuples(_WORDS, st.sampled_from(["", ' domain="https://e.example/tags"'])).map(
            lambda c: _element("category", escape(c[0]), c[1])
        ),
        url.map(lambda u: f'<enclosure url={u} length="1234" type="image/jpeg"/>'),
        url.map(lambda u: f'<media:thumbnail url={u} width="240" height="135"/>'),
        st.tuples(url, _WORDS).map(
            lambda p: (
                f'<media:content url={p[0]} medium="image" width="460">'
                f'<media:credit scheme="urn:ebu">{escape(p[1])}</media:credit></media:content>'
            )
        ),
        url.map(lambda u: f"<comments>{escape(u[1:-1])}</comments>"),
        st.tuples(url, _WORDS).map(lambda p: f"<source url={p[0]}>{escape(p[1])}</source>"),
        _WORDS.map(lambda w: f"<!-- {w.replace('-', ' ')} -->"),
    )


@st.composite
def _rss(draw: st.DrawFn) -> bytes:
    items = draw(st.lists(_rss_item(), max_size=5))
    channel = [
        _element("title", draw(_escaped(draw(_TEXT)))),
        _element("link", escape(draw(_link()))),
        _element("description", draw(_escaped(draw(_TEXT)))),
    ]
    if draw(st.booleans()):
        channel.append(f'<atom:link href="{URL}" rel="self" type="application/rss+xml"/>')
    if draw(st.booleans()):
        channel.append(_element("ttl", str(draw(st.integers(0, 1440)))))
    if draw(st.booleans()):
        channel.append("<sy:updatePeriod>hourly</sy:updatePeriod>")
        channel.append(_element("sy:updateFrequency", str(draw(st.integers(1, 4)))))
    if draw(st.booleans()):
        channel.append(_element("lastBuildDate", draw(_date())))
    if draw(st.booleans()):
        channel.append(f"<image><url>{URL}</url><title>t</title><link>{URL}</link></image>")
    body = "".join(channel) + "\n".join(
        "<item>" + "\n".join(i.children) + "</item>" for i in items
    )
    return draw(_document(f'<rss version="2.0"{NAMESPACES}><channel>{body}</channel></rss>'))


# -- Atom 1.0 -------------------------------------------------------------------------


@st.composite
def _atom_text(draw: st.DrawFn, name: str, text: str) -> str:
    kind = draw(st.sampled_from(["", ' type="text"', ' type="html"']))
    if not text and draw(st.booleans()):
        return f"<{name}{kind}/>"
    return _element(name, draw(_escaped(draw(_padded(text)))), kind)


@st.composite
def _atom_entry(draw: st.DrawFn) -> _Item:
    children: list[str] = []
    identity = draw(_identity(dated=True))
    if identity is not None:
        link, guid = identity
        rel = draw(st.sampled_from(["", ' rel="alternate"']))
        kind = draw(st.sampled_from(["", ' type="text/html"']))
        children.append(f"<link{rel}{kind} href={quoteattr(link)}/>")
        children.append(_element("id", draw(_escaped(draw(_padded(guid))))))
    for name in draw(
        st.sampled_from([(), ("published",), ("updated",), ("published", "updated")])
    ):
        children.append(_element(name, draw(_padded(draw(_date())))))
    if draw(st.booleans()):
        children.append(draw(_atom_text("title", draw(st.one_of(_TEXT, _html())))))
    summary = draw(st.one_of(st.none(), _html(), _TEXT))
    if summary is not None:
        children.append(draw(_atom_text("summary", summary)))
    if summary and summary.strip() and draw(st.booleans()):
        content = draw(_html().filter(lambda c: c.strip() != summary.strip()))
        children.append(draw(_atom_text("content", content)))
    if draw(st.booleans()):
        name = _element("name", draw(_escaped(draw(_padded(draw(_WORDS))))))
        uri = draw(st.sampled_from(["", "<uri>https://e.example/jo</uri>"]))
        children.append(f"<author>{name}{uri}</author>")
    extras = draw(st.lists(_atom_extra(), max_size=3))
    other_links = [e for e in extras if e.startswith("<link")]
    ordered = draw(st.permutations(children + [e for e in extras if e not in other_links]))
    if identity is not None:  # other links only beside an alternate one, and after it
        after = [c.startswith("<link") for c in ordered].index(True) + 1
        for link in other_links:
            ordered.insert(draw(st.integers(after, len(ordered))), link)
    return _Item(tuple(ordered))


def _atom_extra() -> st.SearchStrategy[str]:
    return st.one_of(
        _WORDS.map(lambda w: f"<category term={quoteattr(w)}/>"),
        _WORDS.map(lambda w: f"<rights>{escape(w)}</rights>"),
        _link().map(lambda u: f'<link rel="enclosure" type="image/jpeg" href={quoteattr(u)}/>'),
        _link().map(lambda u: f'<link rel="related" href={quoteattr(u)} hreflang="en"/>'),
        _WORDS.map(lambda w: f"<!-- {w.replace('-', ' ')} -->"),
    )


@st.composite
def _atom(draw: st.DrawFn) -> bytes:
    entries = draw(st.lists(_atom_entry(), max_size=5))
    head = (
        f"<title>{draw(_escaped(draw(_TEXT)))}</title><id>urn:example:feed</id>"
        f'<updated>{draw(_date())}</updated><link rel="self" href="{URL}"/>'
    )
    if draw(st.booleans()):
        head += "<sy:updatePeriod>daily</sy:updatePeriod>"
    body = "\n".join("<entry>" + "\n".join(e.children) + "</entry>" for e in entries)
    sy = ' xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"'
    return draw(_document(f'<feed xmlns="http://www.w3.org/2005/Atom"{sy}>{head}{body}</feed>'))


# -- documents ------------------------------------------------------------------------


@st.composite
def _document(draw: st.DrawFn, root: str) -> bytes:
    """``root`` in UTF-8 with a declaration, maybe a BOM and a prolog."""
    encoding = draw(st.sampled_from(['encoding="utf-8"', 'encoding="UTF-8"', ""]))
    prolog = draw(
        st.sampled_from(
            ["", '<?xml-stylesheet type="text/xsl" href="/feed.xsl"?>\n', "<!-- generator -->\n"]
        )
    )
    bom = "\ufeff" if draw(st.booleans()) else ""
    return f'{bom}<?xml version="1.0" {encoding}?>\n{prolog}{root}\n'.encode()


@st.composite
def _content_type(draw: st.DrawFn, document: bytes) -> str:
    declared = b"encoding=" in document[:60]
    types = [
        "",
        "application/rss+xml",
        "application/xml; charset=utf-8",
        "text/xml; charset=UTF-8",
    ]
    if declared or document.isascii():
        types.append("text/xml")
    return draw(st.sampled_from(types))


# -- the properties -------------------------------------------------------------------


def _assert_read_alike(document: bytes, content_type: str) -> None:
    root = _well_formed_root(document)
    assert root is not None, document
    assert subset_violation(document, root, content_type) is None, document
    reference = parse_feed(document, URL, content_type)
    fast, reading = read_unproven(document, URL, content_type)
    assert reading == "subset"
    assert fast.refresh_hint == reference.refresh_hint
    assert len(fast.entries) == len(reference.entries)
    for ours, theirs in zip(fast.entries, reference.entries, strict=True):
        assert ours == theirs, document.decode()


@DIFFERENTIAL
@given(st.data())
def test_rss_inside_the_subset_reads_alike(data: st.DataObject) -> None:
    document = data.draw(_rss())
    _assert_read_alike(document, data.draw(_content_type(document)))


@DIFFERENTIAL
@given(st.data())
def test_atom_inside_the_subset_reads_alike(data: st.DataObject) -> None:
    document = data.draw(_atom())
    _assert_read_alike(document, data.draw(_content_type(document)))


def test_dates_of_both_formats_are_read_as_the_same_moment() -> None:
    # A guard on the generator: its dates are real and in both formats.
    for text in ("Tue, 14 May 2024 09:00:00 +0100", "14 May 2024 08:00:00 GMT",
                 "2024-05-14T08:00:00Z", "2024-05-14T10:30:00.25+02:30"):  # fmt: skip
        body = (
            f'<?xml version="1.0"?><rss version="2.0"><channel><item><title>t</title>'
            f"<link>https://e.example/a</link><guid>https://e.example/a</guid>"
            f"<pubDate>{text}</pubDate></item></channel></rss>"
        ).encode()
        _assert_read_alike(body, "")
        assert parse_feed(body, URL).entries[0].published == datetime(2024, 5, 14, 8, tzinfo=UTC)
