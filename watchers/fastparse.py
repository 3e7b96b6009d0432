"""A fast feed parser used only where it is proven to read a body as feedparser does.

feedparser is the reference (about 16 ms for a 50 KB news feed here, with
sanitising and HTML link rewriting off); this path takes about 1.7 ms for the
same feed, well-formedness check and refresh hint included. But fastfeedparser
truncates text at entities in malformed XML, raises on empty bodies and HTML
pages, returns ISO dates and does not read the feed's refresh hint. So:

1. a body that is not well-formed XML always goes to feedparser;
2. a well-formed body inside the proven subset (``watchers.feed_subset``:
   documents on which the two are shown to agree, checked on the tree step 1
   parsed) takes the fast path at once, from a source's first poll;
3. otherwise, per source: the first ``PROOF_POLLS`` bodies are parsed by both;
   the source earns the fast path for every body only if every one gave an
   identical ``ParsedFeed`` (entries and refresh hint; one difference and it
   stays on feedparser until restart, in-subset bodies included);
4. on the fast path, any exception falls back to feedparser, and the refresh
   hint is read from the tree that step 1 parsed anyway.

Pure apart from the per-source proof counters it keeps.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

import fastfeedparser
from lxml import etree

from metwatch.errors import ParseError
from metwatch.models import ParsedFeed, RawEntry
from metwatch.workers import Runner, WorkerDied, WorkerTimedOut, inline
from watchers.feed_subset import in_subset
from watchers.parse import absolute_link, parse_feed, refresh_hint

log = logging.getLogger(__name__)

PROOF_POLLS = 3
_DISPROVEN = -1
_WELL_FORMED = etree.XMLParser(resolve_entities=False, no_network=True, recover=False)
_SY = "http://purl.org/rss/1.0/modules/syndication/"
#: Namespaces whose elements feedparser names without a prefix: RSS 0.9 and 1.0, Atom
#: 0.3 and 1.0 (lower-cased, as feedparser compares them).
_FEED_NAMESPACES = frozenset(
    {
        "http://my.netscape.com/rdf/simple/0.9/",
        "http://purl.org/rss/1.0/",
        "http://purl.org/atom/ns#",
        "http://www.w3.org/2005/atom",
    }
)
_HINTS = frozenset({"ttl", "sy:updateperiod", "sy:updatefrequency"})

#: How ``read_unproven`` read a body: fast because it is inside the proven subset;
#: by feedparser with the fast path compared ("same" / "different"); by feedparser
#: with nothing to compare ("none": malformed XML, or the fast path raised).
Reading = Literal["subset", "same", "different", "none"]
#: How ``read_feed`` reads a body: as feedparser does ("reference": the source was
#: read differently once), fast where the subset or a proof allows ("unproven"), or
#: fast for every well-formed body ("proven": the source earned it at run time).
How = Literal["reference", "unproven", "proven"]


class FeedParser:
    """``parse_feed`` with a fast path where it is proven equal: for bodies inside
    the proven subset, and for every body of a source proven at run time.

    ``run`` decides where feedparser, the subset check and the proofs run: here
    (``inline``) or in worker processes (``WorkerPool.run``). Only the proof
    counters live here.
    """

    def __init__(self, proof_polls: int = PROOF_POLLS, *, run: Runner = inline) -> None:
        self.proof_polls = proof_polls
        self.run = run
        self._proofs: dict[str, int] = {}
        self._subset_sources: set[str] = set()

    def fast_sources(self) -> list[str]:
        """Sources whose bodies take the fast path: proven ones (every body), and
        ones whose bodies came inside the proven subset (those bodies; a body
        outside it still needs the source's proof). A source read differently once
        is on feedparser only.
        """
        proven = {s for s, n in self._proofs.items() if n >= self.proof_polls}
        subset = {s for s in self._subset_sources if self._proofs.get(s, 0) != _DISPROVEN}
        return sorted(proven | subset)

    def parse(
        self, source_id: str, content: bytes, url: str, content_type: str = ""
    ) -> ParsedFeed:
        """Parse a feed body (raises ``ParseError`` as ``parse_feed`` does, and when
        the worker parsing it dies)."""
        how = self.how(source_id)
        try:
            parsed, reading = self.run(read_feed, how, content, url, content_type)
        except WorkerDied as e:
            raise parser_died(url, e) from e
        self.learn(source_id, reading)
        return parsed

    def how(self, source_id: str) -> How:
        """How ``read_feed`` should read the source's next body."""
        proofs = self._proofs.get(source_id, 0)
        if proofs == _DISPROVEN:
            return "reference"
        return "unproven" if proofs < self.proof_polls else "proven"

    def learn(self, source_id: str, reading: Reading) -> None:
        """Take in how ``read_feed`` read one of the source's bodies."""
        if reading == "subset":
            self._note_subset(source_id)
        elif reading != "none":
            proofs = self._proofs.get(source_id, 0)
            if proofs != _DISPROVEN and proofs < self.proof_polls:
                self._record_proof(source_id, proofs, reading == "same")

    def _note_subset(self, source_id: str) -> None:
        if source_id not in self._subset_sources:
            self._subset_sources.add(source_id)
            log.debug("source %s: body inside the proven subset, fast parser", source_id)

    def _record_proof(self, source_id: str, proofs: int, same: bool) -> None:
        self._proofs[source_id] = proofs + 1 if same else _DISPROVEN
        if not same:
            log.info(
                "source %s stays on feedparser: the fast parser reads it differently", source_id
            )


def parser_died(url: str, error: WorkerDied) -> ParseError:
    """The error of a source whose body killed the process parsing it, or outran
    its time there."""
    if isinstance(error, WorkerTimedOut):
        return ParseError(
            f"reading this body took longer than {error.seconds:g} s, so it was stopped; "
            "the feed is probably huge or hostile",
            url=url,
        )
    return ParseError(
        "the feed parser process died reading this body (out of memory or crashed); "
        "the feed is probably malformed or hostile",
        url=url,
    )


def read_feed(
    how: How, content: bytes, url: str, content_type: str = ""
) -> tuple[ParsedFeed, Reading]:
    """A body read as ``FeedParser.how`` said, and how it was read (for
    ``FeedParser.learn``). A module-level function, to run in a worker process."""
    if how == "unproven":
        return read_unproven(content, url, content_type)
    if how == "proven":
        return read_fast(content, url, content_type), "none"
    return parse_feed(content, url, content_type), "none"


def read_fast(content: bytes, url: str, content_type: str = "") -> ParsedFeed:
    """A proven source's body: the fast path when the body is well-formed XML and
    the fast parser reads it without error, else feedparser."""
    root = _well_formed_root(content)
    if root is not None:
        try:
            parsed = _parse_fast(content, url, root)
        except Exception:  # any failure of the fast path: the reference decides
            log.debug("fast parser failed on %s; using feedparser", url)
        else:
            if _tree_agrees(root, parsed):
                return parsed
            log.debug("fast parser read %s beyond its proof; using feedparser", url)
    return parse_feed(content, url, content_type)


def read_unproven(content: bytes, url: str, content_type: str = "") -> tuple[ParsedFeed, Reading]:
    """A body of a source that has not earned the fast path: fast when the body is
    inside the proven subset, else feedparser's reading with the fast path compared
    to it. One function, so a worker process parses the tree once and does it all.
    """
    root = _well_formed_root(content)
    if root is not None and in_subset(content, root, content_type):
        try:
            return _parse_fast(content, url, root), "subset"
        except Exception:  # any failure of the fast path: the reference decides
            log.debug("fast parser failed on %s inside the subset; using feedparser", url)
            return parse_feed(content, url, content_type), "none"
    reference, same = _prove(content, url, content_type, root)
    reading: Reading = "none" if same is None else "same" if same else "different"
    return reference, reading


def read_and_prove(
    content: bytes, url: str, content_type: str = ""
) -> tuple[ParsedFeed, bool | None]:
    """feedparser's reading of a body, and whether the fast path reads it the same.

    None: no proof either way (the body is not well-formed XML, which always goes
    to feedparser). One function, so a worker process does the whole proof.
    """
    return _prove(content, url, content_type, _well_formed_root(content))


def _prove(
    content: bytes, url: str, content_type: str, root: Any | None
) -> tuple[ParsedFeed, bool | None]:
    reference = parse_feed(content, url, content_type)
    if root is None:
        return reference, None
    try:
        # The whole ParsedFeed: a differing refresh hint would poll sooner than asked.
        same = _parse_fast(content, url, root) == reference
    except Exception:  # a parser that raises where feedparser reads is not proven
        same = False
    return reference, same


#: Entry children whose presence decides whether feedparser finds an id, a date.
_ID_NAMES = frozenset({"guid", "id"})
#: An RSS 1.0 item's id is its rdf:about.
_RDF_ABOUT = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about"
_DATE_NAMES = frozenset({"pubdate", "published", "updated", "date", "issued", "modified",
                         "created"})  # fmt: skip


def _tree_agrees(root: Any, parsed: ParsedFeed) -> bool:
    """Whether a proven source's body stays where its proof holds, checked against
    the tree: an entry without an id element or a date element must have no id or
    date (fastfeedparser falls back to the link for the one and makes the other out
    of other text, such as a guid "a"), and one alternate link per entry (with
    several, the two pick differently)."""
    entries = [e for e in root.iter() if isinstance(e.tag, str) and _local(e) in ("item", "entry")]
    if len(entries) != len(parsed.entries):
        return False
    for element, entry in zip(entries, parsed.entries, strict=True):
        children = [child for child in element if isinstance(child.tag, str)]
        names = [_local(child) for child in children]
        has_id = _RDF_ABOUT in element.attrib or any(
            _local(c) in _ID_NAMES and (c.text or "").strip() for c in children
        )
        if entry.guid is not None and not has_id:
            return False
        if entry.published is not None and not _DATE_NAMES.intersection(names):
            return False
        alternates = [c for c in children if _local(c) == "link"
                      and c.get("rel", "alternate") == "alternate"]  # fmt: skip
        if len(alternates) > 1:
            return False
    return True


def _local(element: Any) -> str:
    return str(element.tag).rpartition("}")[2].lower()


def _well_formed_root(content: bytes) -> Any | None:
    """The document's root element, or None when ``content`` is not well-formed XML."""
    try:
        return etree.fromstring(content, _WELL_FORMED)
    except etree.XMLSyntaxError:
        return None


def _parse_fast(content: bytes, url: str, root: Any) -> ParsedFeed:
    """``content`` read by fastfeedparser; ``root`` is its lxml tree, for the refresh hint."""
    parsed = fastfeedparser.parse(content, include_tags=False, include_media=False,
                                  include_enclosures=False)  # fmt: skip
    return ParsedFeed(tuple(_entry(e, url) for e in parsed.entries), _refresh_hint(root))


def _refresh_hint(root: Any) -> float | None:
    """The hint ``parse_feed`` gets from feedparser, read from the lxml tree."""
    texts = _hint_texts(root)
    return refresh_hint(
        texts.get("ttl", ""), texts.get("sy:updateperiod", ""), texts.get("sy:updatefrequency", "")
    )


def _hint_texts(root: Any) -> dict[str, str]:
    """Text of each hint element of the feed itself, keyed by its feedparser name.

    Only children of the feed element are read: hints sit there in practice, and
    feedparser's rules for deeper ones (inside <image>, say) are not copied here;
    a feed that puts them elsewhere differs on its proof polls and stays on
    feedparser.
    """
    texts: dict[str, str] = {}
    for feed in _feed_elements(root):
        for child in feed:
            name = _name(child)
            if name in _HINTS:
                # The last one wins, as in feedparser, which also stores an element
                # that has attributes as a dict of them: no number, so no hint.
                texts[name] = "" if child.attrib else _own_text(child)
    return texts


def _feed_elements(root: Any) -> list[Any]:
    """Where feedparser reads feed-level values: Atom's root <feed>, or each
    <channel> under the root (RSS 2.0 <rss>, RSS 1.0 <rdf:RDF>)."""
    if _name(root) == "feed":
        return [root]
    return [child for child in root if _name(child) == "channel"]


def _name(element: Any) -> str:
    """The element's name as feedparser keys it ("ttl", "sy:updateperiod"); "" for
    comments and processing instructions, and for other prefixed vocabularies."""
    if not isinstance(element.tag, str):
        return ""
    # lxml's "{namespace}local" split as a string, 4x cheaper than etree.QName: this
    # runs on every child of a channel. feedparser ignores case in both parts.
    head, _, local = element.tag.lower().rpartition("}")
    namespace = head[1:]
    if namespace == _SY:
        return f"sy:{local}"
    if element.prefix is None or namespace in _FEED_NAMESPACES:
        return local
    return ""


def _own_text(element: Any) -> str:
    # Text around comments counts, as in feedparser, which joins its character data.
    return "".join([element.text or "", *(child.tail or "" for child in element)])


def _entry(entry: Any, url: str) -> RawEntry:
    summary = entry.get("description") or ""
    # Stripped: feedparser strips every text it reads; fastfeedparser keeps content as is.
    contents = [c.get("value", "").strip() for c in entry.get("content") or []]
    # fastfeedparser repeats the description as content when there is none.
    content = max(contents, key=len) if contents else ""
    if content == summary and not _has_own_content(entry):
        content = ""
    return RawEntry(
        guid=entry.get("id") or None,
        link=absolute_link(entry.get("link"), url),
        title=entry.get("title") or "",
        summary=summary,
        content=content,
        published=_date(entry.get("published") or entry.get("updated")),
        author=entry.get("author") or None,
    )


def _has_own_content(entry: Any) -> bool:
    return any(c.get("type") not in (None, "text/html") for c in entry.get("content") or [])


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Whole seconds: feedparser's dates are time tuples; both truncate the fraction.
    when = when.replace(microsecond=0)
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
