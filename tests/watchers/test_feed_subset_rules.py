"""Each rule of the proven subset, and the corpus.

Every document here sits just outside the subset: the check names the rule it
breaks, the body still reads as feedparser reads it (through the per-source
proof), and, where these parser versions show why the rule exists, the fast
reading really differs. The corpus test runs the check over the test feeds and
generated news feeds: whatever it accepts reads alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.feeds import FeedItem, atom, realistic_feed, rss
from watchers.fastparse import FeedParser, _well_formed_root, read_and_prove, read_unproven
from watchers.feed_subset import subset_violation
from watchers.parse import parse_feed

DATA = Path(__file__).resolve().parent.parent / "data" / "feeds"
URL = "https://news.example.com/feeds/uk.xml"
DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
NAMESPACES = (
    ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:media="http://search.yahoo.com/mrss/"'
)
TITLE = "<title>Met report</title>"
IDENTITY = "<link>https://e.example/a</link><guid>https://e.example/a</guid>"
DATE = "<pubDate>Tue, 14 May 2024 09:00:00 GMT</pubDate>"
SUMMARY = "<description>&lt;p&gt;Inspectors found failings&lt;/p&gt;</description>"
PLAIN_ITEM = TITLE + IDENTITY + DATE + SUMMARY


def _rss(item: str = PLAIN_ITEM, *, channel: str = "", head: str = DECLARATION) -> str:
    return (
        f'{head}<rss version="2.0"{NAMESPACES}><channel><title>News</title>'
        f"<link>https://e.example/</link>{channel}<item>{item}</item></channel></rss>\n"
    )


def _atom(entry: str, *, feed: str = "") -> str:
    return (
        f'{DECLARATION}<feed xmlns="http://www.w3.org/2005/Atom"{feed}><title>t</title>'
        f"<id>urn:f</id><updated>2024-05-14T09:00:00Z</updated><entry>{entry}</entry></feed>\n"
    )


ATOM_ENTRY = (
    '<title>Met report</title><link href="https://e.example/a"/><id>urn:a</id>'
    "<updated>2024-05-14T09:00:00Z</updated><summary>Inspectors found failings</summary>"
)

#: (document, Content-Type, the rule it breaks, whether the fast reading differs
#: with these parser versions: True when it does, None when not shown here).
OUTSIDE: dict[str, tuple[str, str, str, bool | None]] = {
    # -- bytes and encodings
    "no-declaration": (_rss(head=""), "", "no XML declaration", None),
    "doctype": (_rss(head=DECLARATION + "<!DOCTYPE rss>"), "", "DOCTYPE", None),
    "declared-latin1": (
        _rss(head='<?xml version="1.0" encoding="ISO-8859-1"?>'),
        "",
        "encoding",
        None,
    ),
    "charset-latin1": (
        _rss(TITLE.replace("Met", "Met’s") + IDENTITY + DATE),
        "text/xml; charset=windows-1252",
        "charset windows-1252",
        True,  # feedparser decodes by the HTTP charset
    ),
    "text-xml-undeclared-non-ascii": (
        _rss(TITLE.replace("Met", "Café") + IDENTITY + DATE, head='<?xml version="1.0"?>'),
        "text/xml",
        "text/* without charset",
        None,  # feedparser would guess the encoding (with chardet installed)
    ),
    "xml-base": (
        _rss(TITLE + "<link>a</link><guid>a</guid>" + DATE).replace(
            "<channel>", '<channel xml:base="https://other.example/dir/">'
        ),
        "",
        "xml:base",
        True,  # feedparser resolves the link and guid against it
    ),
    "rss-colon-in-head": (
        _rss(TITLE + IDENTITY + DATE + "<description>x a=b</description>").replace(
            "<title>News</title>", "<title>rss: news</title>"
        ),
        "",
        "a head fastfeedparser repairs",
        None,  # it then rewrites the body (a=b to a="b") when lxml's strict parse fails
    ),
    # -- documents and elements
    "rss-1.0": (
        f'{DECLARATION}<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        ' xmlns="http://purl.org/rss/1.0/"><channel rdf:about="https://e.example/">'
        "<title>t</title></channel></rdf:RDF>",
        "",
        "root element",
        None,
    ),
    "rss-0.91": (_rss().replace('version="2.0"', 'version="0.91"'), "", "version 2.0", None),
    "channel-base-attribute": (
        _rss(
            TITLE + "<link>a</link><guid>a</guid>" + DATE,
            channel='<ttl base="https://other.example/">15</ttl>',
        ),
        "",
        "a base attribute",
        None,
    ),  # fmt: skip
    "unknown-channel-element": (
        _rss(channel='<extra:note xmlns:extra="urn:x">n</extra:note>'),
        "",
        "feed-level",
        None,
    ),
    "media-title": (
        "<media:title>Other title</media:title>" + PLAIN_ITEM,
        "",
        "{http://search.yahoo.com/mrss/}title in an item",
        True,  # fastfeedparser takes the first *title, feedparser the RSS one
    ),
    "media-description-in-media-content": (
        PLAIN_ITEM + '<media:content url="https://e.example/i.jpg"><media:description>'
        "Photo caption</media:description></media:content>",
        "",
        "description in {http://search.yahoo.com/mrss/}content",
        True,  # feedparser reads it (as content, after a description)
    ),
    "item-attribute": (
        _rss().replace("<item>", '<item xml:lang="en">'),
        "",
        "item attributes",
        None,
    ),
    "guid-attribute-value": (
        PLAIN_ITEM.replace("<guid>", '<guid isPermaLink="True">'),
        "",
        "isPermaLink='True'",
        None,
    ),
    "markup-in-title": (
        "<title>Met <b>report</b></title>" + IDENTITY + DATE + SUMMARY,
        "",
        "child nodes in title",
        True,  # feedparser serialises the markup, fastfeedparser stops at it
    ),
    "comment-in-title": (
        "<title>Met <!-- x -->report</title>" + IDENTITY + DATE + SUMMARY,
        "",
        "child nodes in title",
        True,  # feedparser joins the text around the comment
    ),
    "two-descriptions": (
        PLAIN_ITEM + "<description>second</description>",
        "",
        "two summary elements",
        True,  # feedparser takes the second as content
    ),
    "author-and-creator": (
        PLAIN_ITEM + "<author>A</author><dc:creator>B</dc:creator>",
        "",
        "two author elements",
        True,  # feedparser keeps the last, fastfeedparser prefers <author>
    ),
    # -- identity
    "empty-guid": (
        TITLE + "<link>https://e.example/a</link><guid></guid>" + DATE,
        "",
        "an empty link or guid",
        True,  # fastfeedparser falls back to the link for the id
    ),
    "link-without-guid": (
        TITLE + "<link>https://e.example/a</link>" + DATE,
        "",
        "a link without a guid",
        True,  # fastfeedparser takes the link as the id
    ),
    "permalink-guid-without-link": (
        TITLE + "<guid>a-1</guid>" + DATE,
        "",
        "a guid without a link",
        True,  # feedparser takes a permalink guid as the link
    ),
    "undated-item-with-plain-guid": (
        TITLE + '<link>https://e.example/a</link><guid isPermaLink="false">a</guid>',
        "",
        "an undated item whose guid is not a URL",
        True,  # fastfeedparser reads a date out of "a"
    ),
    "link-with-reference": (
        TITLE + "<link>https://e.example/a?x=1&amp;y;</link><guid>g</guid>" + DATE,
        "",
        "&name; in link text",
        True,  # feedparser drops the semicolon
    ),
    "extra-slashes": (
        TITLE + "<link>https:///e.example/a</link><guid>https:///e.example/a</guid>" + DATE,
        "",
        "slashes feedparser removes",
        True,
    ),
    # -- dates
    "date-bst": (
        TITLE + IDENTITY + "<pubDate>Tue, 14 May 2024 09:00:00 BST</pubDate>",
        "",
        "a date (published) outside",
        True,  # feedparser does not know BST (reads +0000), fastfeedparser does
    ),
    "date-iso-offset-without-colon": (
        TITLE + IDENTITY + "<dc:date>2024-05-14T09:00:00+0530</dc:date>",
        "",
        "a date (updated) outside",
        True,  # feedparser reads the offset's minutes wrong
    ),
    "date-29-february-2023": (
        TITLE + IDENTITY + "<pubDate>2023-02-29T09:00:00Z</pubDate>",
        "",
        "a date (published) outside",
        True,  # fastfeedparser moves it to the 28th, feedparser has none
    ),
    "date-hour-24": (
        TITLE + IDENTITY + "<pubDate>2024-05-14T24:00:00Z</pubDate>",
        "",
        "a date (published) outside",
        None,  # both read the next day here
    ),
    # -- content
    "content-without-summary": (
        TITLE + IDENTITY + DATE + "<content:encoded>&lt;p&gt;Body&lt;/p&gt;</content:encoded>",
        "",
        "content without a summary",
        True,  # fastfeedparser writes a summary from the content
    ),
    "content-equal-to-summary": (
        PLAIN_ITEM + "<content:encoded> &lt;p&gt;Inspectors found failings&lt;/p&gt;"
        "</content:encoded>",
        "",
        "content equal to the summary",
        True,  # fastfeedparser's copy of the summary cannot be told from it
    ),
    # -- characters
    "c1-control": (
        "<title>Met&#x85;report</title>" + IDENTITY + DATE,
        "",
        "characters",
        True,
    ),  # feedparser maps it to cp1252's ellipsis
    "latin1-that-is-utf8": (
        "<title>CafÃ©</title>" + IDENTITY + DATE,
        "",
        "characters",
        True,
    ),  # feedparser "repairs" it to Café
    "line-separator": (
        "<title>Met\u2028report</title>" + IDENTITY + DATE,
        "",
        "separator",
        True,
    ),  # fastfeedparser makes it a newline
    "noncharacter": ("<title>Met&#xFDD0;report</title>" + IDENTITY + DATE, "", "characters", None),
    # Written as themselves: found in the document's bytes.
    "c1-raw": ("<title>Met\x85report</title>" + IDENTITY + DATE, "", "characters", True),
    "placeholder-raw": ("<title>Met\ue000</title>" + IDENTITY + DATE, "", "characters", None),
    "noncharacter-raw": ("<title>Met\ufdd0</title>" + IDENTITY + DATE, "", "characters", None),
    "astral-noncharacter-raw": (
        "<title>Met\U0001fffe</title>" + IDENTITY + DATE,
        "",
        "characters",
        None,
    ),
    "plane-16-raw": ("<title>Met\U00100000</title>" + IDENTITY + DATE, "", "characters", None),
    "plane-2": ("<title>Met \U00020000</title>" + IDENTITY + DATE, "", "characters", None),
    # -- Atom
    "atom-xhtml-title": (
        _atom(
            ATOM_ENTRY.replace(
                "<title>Met report</title>",
                '<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">Met <b>report</b>'
                "</div></title>",
            )
        ),
        "",
        "type='xhtml'",
        True,
    ),  # fmt: skip
    "atom-content-base64": (
        _atom(ATOM_ENTRY + '<content type="image/png">aGVsbG8=</content>'),
        "",
        "type='image/png'",
        True,  # feedparser decodes it as base64
    ),
    "atom-first-link-not-alternate": (
        _atom('<link rel="enclosure" href="https://e.example/i.jpg"/>' + ATOM_ENTRY),
        "",
        "first link is not its HTML alternate",
        True,  # fastfeedparser takes the first href
    ),
    "atom-alternate-pdf": (
        _atom(ATOM_ENTRY.replace("<link ", '<link type="application/pdf" ')),
        "",
        "first link is not its HTML alternate",
        True,  # feedparser wants an HTML alternate, so takes the id as link
    ),
    "atom-padded-href": (
        _atom(ATOM_ENTRY.replace('href="https', 'href=" https')),
        "",
        "padded",
        True,  # fastfeedparser strips it
    ),
    "atom-two-authors": (
        _atom(ATOM_ENTRY + "<author><name>A</name></author><author><name>B</name></author>"),
        "",
        "two Atom authors",
        True,  # feedparser keeps the last, fastfeedparser the first
    ),
    "atom-author-email": (
        _atom(ATOM_ENTRY + "<author><name>A</name><email>a@e.example</email></author>"),
        "",
        "email",
        True,  # feedparser writes "A (a@e.example)"
    ),
    "atom-contributor": (
        _atom(ATOM_ENTRY + "<contributor><name>C</name></contributor>"),
        "",
        "contributor in an item",
        None,
    ),
}


def _document(case: tuple[str, str, str, bool | None]) -> bytes:
    document = case[0]
    return (document if document.startswith(("<?xml", "<rss")) else _rss(document)).encode()


@pytest.mark.parametrize("name", OUTSIDE)
def test_a_document_just_outside_the_subset_is_rejected_and_still_read_right(name: str) -> None:
    case = OUTSIDE[name]
    document, content_type, rule, differs = _document(case), case[1], case[2], case[3]
    root = _well_formed_root(document)
    assert root is not None
    violation = subset_violation(document, root, content_type)
    assert violation is not None
    assert rule in violation
    reference = parse_feed(document, URL, content_type)
    parser = FeedParser()
    assert parser.parse("s", document, URL, content_type) == reference
    assert read_unproven(document, URL, content_type)[1] != "subset"
    if differs:
        assert read_and_prove(document, URL, content_type) == (reference, False)


def test_the_plain_documents_the_negative_cases_start_from_are_inside() -> None:
    for document in (_rss(), _atom(ATOM_ENTRY)):
        content = document.encode()
        assert subset_violation(content, _well_formed_root(content)) is None
        assert read_unproven(content, URL) == (parse_feed(content, URL), "subset")


# -- the corpus -----------------------------------------------------------------------


def _corpus() -> list[pytest.ParameterSet]:
    files = [pytest.param(p.read_bytes(), id=p.name) for p in sorted(DATA.iterdir())]
    generated = [
        pytest.param(realistic_feed(n, seed=seed).encode(), id=f"realistic-{n}-{seed}")
        for n, seed in [(0, 0), (1, 1), (5, 2), *((50, s) for s in range(3, 23))]
    ]
    item = FeedItem(title="t", link="/a", guid="g", description="d", author="A")
    builders = [
        pytest.param(rss([item]).encode(), id="rss-builder"),
        pytest.param(atom([item]).encode(), id="atom-builder"),
        pytest.param(realistic_feed(3, seed=9, target_bytes=30_000).encode(), id="large"),
    ]
    return files + generated + builders


@pytest.mark.parametrize("document", _corpus())
def test_whatever_the_check_accepts_in_the_corpus_reads_alike(document: bytes) -> None:
    root = _well_formed_root(document)
    if root is None or subset_violation(document, root) is not None:
        return
    assert read_unproven(document, URL) == (parse_feed(document, URL), "subset")


def test_the_generated_news_feeds_and_the_plain_test_feeds_are_inside() -> None:
    # The bench corpus and the cold pass rely on it.
    for seed in range(20):
        document = realistic_feed(50, seed=seed).encode()
        assert subset_violation(document, _well_formed_root(document)) is None
    for name in ("met-rss.xml", "met-atom.xml", "empty.xml"):
        document = (DATA / name).read_bytes()
        assert subset_violation(document, _well_formed_root(document)) is None, name
