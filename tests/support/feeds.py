"""Builders that render RSS 2.0 and Atom 1.0 documents from plain data, for tests.

`FeedItem` holds one entry; `rss` and `atom` turn a list of them into a document
string (UTF-8 declared), escaping all text and omitting every element whose value is
None, so tests can make items without a link, date or guid. `realistic_item` and
`realistic_feed` produce deterministic, plausible news feeds (varied headlines,
HTML descriptions of 2-8 paragraphs) for parsing benchmarks.

It does not validate documents against the specs (an Atom entry without an id is
rendered as asked), does not remove characters that XML forbids (control
characters), does not write CDATA sections, and does no I/O.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape, quoteattr

__all__ = ["FeedItem", "atom", "realistic_feed", "realistic_item", "rss"]

_XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
_DEFAULT_LINK = "https://news.example.com/"
#: Used as the Atom feed's <updated> when no item has a date (keeps output deterministic).
_FALLBACK_UPDATED = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeedItem:
    """One RSS item / Atom entry. None fields are left out of the document."""

    title: str | None
    link: str | None = None
    guid: str | None = None
    #: RSS <description> / Atom <summary type="html">; HTML is escaped, not parsed.
    description: str | None = None
    #: RSS <content:encoded> / Atom <content type="html">.
    content: str | None = None
    #: Must be timezone-aware.
    published: datetime | None = None
    author: str | None = None
    #: RSS only: the guid's isPermaLink attribute.
    guid_is_permalink: bool = False

    def __post_init__(self) -> None:
        if self.published is not None and self.published.utcoffset() is None:
            raise ValueError("FeedItem.published must be timezone-aware")


def _element(name: str, text: str | None, attrs: str = "", *, indent: int = 6) -> str:
    """An indented ``<name attrs>text</name>`` line, text escaped; "" when text is None."""
    if text is None:
        return ""
    return f"{' ' * indent}<{name}{attrs}>{escape(text)}</{name}>\n"


# -- RSS 2.0 ---------------------------------------------------------------------


def _rss_item(item: FeedItem) -> str:
    permalink = ' isPermaLink="true"' if item.guid_is_permalink else ' isPermaLink="false"'
    pub_date = None if item.published is None else format_datetime(item.published)
    return "".join(
        (
            "    <item>\n",
            _element("title", item.title),
            _element("link", item.link),
            _element("guid", item.guid, permalink),
            _element("pubDate", pub_date),
            _element("dc:creator", item.author),
            _element("description", item.description),
            _element("content:encoded", item.content),
            "    </item>\n",
        )
    )


def _rss_head(title: str, link: str, description: str, ttl: int | None, extra: str) -> str:
    channel = "".join(
        (
            _element("title", title, indent=4),
            _element("link", link, indent=4),
            _element("description", description, indent=4),
            _element("ttl", None if ttl is None else str(ttl), indent=4),
        )
    )
    return (
        f"{_XML_DECLARATION}"
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        f"  <channel>\n{channel}{extra}"
    )


_RSS_TAIL = "  </channel>\n</rss>\n"


def rss(
    items: Iterable[FeedItem],
    *,
    title: str = "Test feed",
    link: str = _DEFAULT_LINK,
    description: str = "A feed built for metwatch tests",
    ttl: int | None = None,
    extra_channel_xml: str = "",
) -> str:
    """An RSS 2.0 document; ``extra_channel_xml`` is inserted verbatim before the items."""
    head = _rss_head(title, link, description, ttl, extra_channel_xml)
    return head + "".join(_rss_item(item) for item in items) + _RSS_TAIL


# -- Atom 1.0 --------------------------------------------------------------------


def _rfc3339(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def _atom_entry(item: FeedItem) -> str:
    link = "" if item.link is None else f"    <link href={quoteattr(item.link)}/>\n"
    author = "" if item.author is None else f"<author><name>{escape(item.author)}</name></author>"
    author = author and f"    {author}\n"
    html = ' type="html"'
    return "".join(
        (
            "  <entry>\n",
            _element("title", item.title, indent=4),
            link,
            _element("id", item.guid, indent=4),
            _element("published", _rfc3339(item.published), indent=4),
            _element("updated", _rfc3339(item.published), indent=4),
            author,
            _element("summary", item.description, html, indent=4),
            _element("content", item.content, html, indent=4),
            "  </entry>\n",
        )
    )


def atom(
    items: Sequence[FeedItem],
    *,
    title: str = "Test feed",
    feed_id: str = "urn:metwatch:test-feed",
    link: str = _DEFAULT_LINK,
    updated: datetime | None = None,
) -> str:
    """An Atom 1.0 document. Each entry's ``published`` also fills its <updated>.

    The feed's <updated> is ``updated``, else the newest item date, else 2024-01-01.
    """
    dates = [item.published for item in items if item.published is not None]
    feed_updated = updated or max(dates, default=_FALLBACK_UPDATED)
    head = "".join(
        (
            _XML_DECLARATION,
            '<feed xmlns="http://www.w3.org/2005/Atom">\n',
            _element("title", title, indent=2),
            _element("id", feed_id, indent=2),
            _element("updated", _rfc3339(feed_updated), indent=2),
            f'  <link rel="alternate" href={quoteattr(link)}/>\n',
        )
    )
    return head + "".join(_atom_entry(item) for item in items) + "</feed>\n"


# -- realistic news --------------------------------------------------------------

_SUBJECTS = (
    "Metropolitan Police",
    "Scotland Yard",
    "Met commissioner",
    "Home Office",
    "Home Secretary",
    "Police watchdog",
    "HM Inspectorate of Constabulary",
    "London mayor",
    "City Hall",
    "Transport for London",
    "Crown Prosecution Service",
    "Independent Office for Police Conduct",
    "NHS trust",
    "Treasury",
    "Council leaders",
    "Rail operator",
    "Ofsted",
    "Met Office",
    "Bank of England",
    "Premier League club",
)
_VERBS = (
    "criticised over",
    "announces review of",
    "faces questions on",
    "pledges action on",
    "defends record on",
    "launches inquiry into",
    "warned about",
    "publishes report on",
    "under pressure over",
    "cuts funding for",
    "sets new targets for",
    "apologises for",
)
_TOPICS = (
    "stop and search",
    "emergency response times",
    "violence against women and girls",
    "knife crime",
    "vetting failures",
    "officer misconduct",
    "deaths in custody",
    "fraud investigations",
    "rail safety",
    "bus fares",
    "housing targets",
    "A&E waiting times",
    "ULEZ expansion",
    "shoplifting",
    "neighbourhood policing",
    "victim care",
    "flood defences",
    "school places",
    "interest rates",
    "ticket prices",
)
_HEADLINE_FORMS = (
    "{Subject} {verb} {topic}",
    "{Topic}: {subject} {verb} it after damning report",
    "‘We must do better’ – {subject} {verb} {topic}",
    "{n} key findings as {subject} {verb} {topic}",
    "Live: {subject} {verb} {topic}",
    "{Subject} {verb} {topic} — what it means for Londoners",
)
_SENTENCES = (
    "The {subject} said it would respond to the findings on {topic} within {n} weeks.",
    "Figures published on {weekday} show a {n}% change in {topic} over the past year.",
    "“This is not good enough,” a spokesperson for the {subject} told reporters.",
    "Campaigners said the report on {topic} confirmed what victims had said for years.",
    "Inspectors found that {n} of the cases they examined had been handled poorly.",
    "The {subject} has been asked to publish an improvement plan by the end of {month}.",
    "Critics argue that {topic} has been neglected since budgets were cut in {year}.",
    "Officials insisted progress had been made, pointing to {n} new specialist teams.",
    "A further update on {topic} is expected when the committee meets in {month}.",
    "Residents in {borough} told us they had noticed little difference so far.",
)
_BOROUGHS = (
    "Lambeth",
    "Hackney",
    "Croydon",
    "Tower Hamlets",
    "Camden",
    "Ealing",
    "Barnet",
    "Southwark",
    "Newham",
    "Brent",
    "Islington",
    "Lewisham",
)
_MONTHS = ("January", "March", "May", "July", "September", "November")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_SECTIONS = ("uk", "london", "politics", "crime", "business", "health", "transport")
_AUTHORS = (
    "Priya Shah",
    "Tom Hughes",
    "Aisling O’Brien",
    "Daniel Okafor",
    "Chloé Martin",
    "Sam Whitfield",
    "Grace Adeyemi",
    "Rhys Evans",
)
_NEWEST = datetime(2024, 6, 3, 9, 30, tzinfo=UTC)


def _words(rng: random.Random) -> dict[str, str]:
    subject, topic = rng.choice(_SUBJECTS), rng.choice(_TOPICS)
    return {
        "subject": subject,
        "Subject": subject,
        "topic": topic,
        "Topic": topic[0].upper() + topic[1:],
        "verb": rng.choice(_VERBS),
        "n": str(rng.randint(2, 48)),
        "weekday": rng.choice(_WEEKDAYS),
        "month": rng.choice(_MONTHS),
        "year": str(rng.randint(2010, 2022)),
        "borough": rng.choice(_BOROUGHS),
    }


def _paragraph(rng: random.Random, words: dict[str, str]) -> str:
    sentences = rng.sample(_SENTENCES, 2 if rng.random() < 0.15 else 1)
    text = escape(" ".join(sentences).format(**words))
    if rng.random() < 0.15:
        topic = words["topic"]
        href = f"https://news.example.com/topics/{_slug(topic)}"
        text += f" <a href={quoteattr(href)}>More on {escape(topic)}</a>"
    return f"<p>{text}</p>"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def realistic_item(i: int, rng: random.Random) -> FeedItem:
    """The ``i``-th item (0 = newest) of a plausible UK news feed, drawn from ``rng``.

    Items get a unique guid and link per ``i``, a date ``i`` × ~40 minutes before
    2024-06-03 09:30 UTC, usually an author, and an HTML description of 2-8 <p>
    paragraphs, some with an <a> link.
    """
    words = _words(rng)
    headline = rng.choice(_HEADLINE_FORMS).format(**words)
    headline = headline[0].upper() + headline[1:]
    article_id = 480_000 + i * 16 + rng.randint(0, 15)
    published = _NEWEST - timedelta(minutes=i * 40 + rng.randint(0, 39))
    section = rng.choice(_SECTIONS)
    link = (
        f"https://news.example.com/{section}/{published:%Y/%m/%d}/"
        f"{_slug(headline)[:60].rstrip('-')}-{article_id}"
    )
    count = round(rng.triangular(2, 8, 3))
    paragraphs = [_paragraph(rng, words) for _ in range(count)]
    return FeedItem(
        title=headline,
        link=link,
        guid=f"news-example-{article_id}",
        description="\n".join(paragraphs),
        published=published,
        author=rng.choice(_AUTHORS) if rng.random() < 0.85 else None,
    )


def realistic_feed(n_items: int, seed: int, *, target_bytes: int | None = None) -> str:
    """A deterministic RSS 2.0 news feed of ``n_items`` `realistic_item` items.

    With ``target_bytes``, items continue past ``n_items`` until the UTF-8 document
    is at least that long (``n_items`` is then a minimum). 50 items are ~20-60 KB.
    """
    rng = random.Random(seed)
    head = _rss_head(
        "Example News – London", _DEFAULT_LINK, "Latest stories from Example News", 15, ""
    )
    size = len(head.encode()) + len(_RSS_TAIL.encode())
    parts: list[str] = []
    while len(parts) < n_items or (target_bytes is not None and size < target_bytes):
        item_xml = _rss_item(realistic_item(len(parts), rng))
        parts.append(item_xml)
        size += len(item_xml.encode())
    return head + "".join(parts) + _RSS_TAIL
