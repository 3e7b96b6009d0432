"""Pure stages the pipeline hands to worker processes, as picklable calls.

Two calls per poll, either side of the store's look-up of what is new:
``read_and_normalise`` turns a feed body into items (parse, then normalise),
and ``classify_and_prepare`` runs the classifier over the new ones and, for
the flagged ones, makes what their stories need (fingerprint and summary). In
a worker process that is the CPU of every entry off the main process, which
keeps the fetches, the store and clustering.

Compiled rules hold RE2 objects, which cannot be pickled, so a call carries
the rules file's bytes (``RulesSource``, a few KB) and each process compiles
a version once and keeps it; a hot reload brings a new version, compiled on
its first call. In the process that loaded the rules (``remember``), the
compiled rules are used as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.fingerprints import fingerprint
from bot.prepare import StoryInputs, story_inputs
from classifiers.match import match_item
from classifiers.rules import RuleSet, parse_rules
from metwatch.models import Classified, Item, Match, RawEntry, SourceSpec
from watchers.fastparse import How, Reading, read_feed
from watchers.newest import feed_entries
from watchers.normalise import normalise
from watchers.teasers import Teaser, teaser

#: Compiled versions a process keeps (the current one and the one before a reload).
KEPT_VERSIONS = 2

#: One new item's classification, and its story inputs when it is flagged.
Verdict = tuple[tuple[Match, ...], StoryInputs | None]

_compiled: dict[str, RuleSet] = {}


@dataclass(frozen=True, slots=True)
class ReadFeed:
    """A body's entries as items, in the body's order (repeats included)."""

    items: tuple[Item, ...]
    #: Item id -> what the full-text step needs, for teaser-only entries (the
    #: first entry of an id decides, as when repeats are dropped).
    teasers: dict[str, Teaser]
    #: The feed's own refresh hint (seconds), if it gives one.
    refresh_hint: float | None = None
    #: How the parser read it (``FeedParser.learn`` takes it in).
    reading: Reading = "none"
    #: Whether a 304 to this body's validators would mean nothing new. Not for a
    #: sitemap index: its child sitemaps change under an unchanged index.
    revalidates: bool = True
    #: Entries the body lists, when more than were read (None: all were read).
    listed: int | None = None


def read_and_normalise(
    how: How, content: bytes, url: str, content_type: str, source: SourceSpec, now: datetime,
    fulltext_min_chars: int,
) -> ReadFeed:  # fmt: skip
    """Parse a feed body (as ``FeedParser.how`` said) and normalise the entries read
    of it (``feed_entries``: of a long one, ``listed`` says how many it has)."""
    parsed, reading = read_feed(how, content, url, content_type)
    entries = feed_entries(parsed.entries)
    read = normalised(entries, source, now, fulltext_min_chars, parsed.refresh_hint, reading)
    listed = len(parsed.entries)
    return read if listed == len(entries) else replace(read, listed=listed)


def normalised(
    entries: Sequence[RawEntry], source: SourceSpec, now: datetime, fulltext_min_chars: int,
    refresh_hint: float | None = None, reading: Reading = "none",
) -> ReadFeed:  # fmt: skip
    """Entries as items, with the teasers among them noted."""
    items = tuple(normalise(e, source, now) for e in entries)
    teasers: dict[str, Teaser] = {}
    seen: set[str] = set()
    for item, entry in zip(items, entries, strict=True):
        if item.id not in seen and (found := teaser(entry, fulltext_min_chars)):
            teasers[item.id] = found
        seen.add(item.id)
    return ReadFeed(items, teasers, refresh_hint, reading)


@dataclass(frozen=True, slots=True)
class RulesSource:
    """What a worker process needs to compile the same rules."""

    version: str
    path: str
    data: bytes


def remember(rules: RuleSet) -> RulesSource:
    """Keep ``rules`` compiled in this process; returns what other processes need."""
    _keep(rules)
    return RulesSource(rules.version, rules.path, rules.data)


def classify_and_prepare(source: RulesSource, items: Sequence[Item]) -> list[Verdict]:
    """Each item's matches, with (fingerprint, summary) for the flagged ones."""
    rules = _rules(source)
    matches = [match_item(item, rules) for item in items]
    flagged = [item.text for item, found in zip(items, matches, strict=True) if found]
    inputs = iter(story_inputs(flagged))
    return [(found, next(inputs) if found else None) for found in matches]


def classify_here(
    items: Sequence[Item], rules: RuleSet
) -> tuple[list[Classified], list[StoryInputs]]:
    """The same, in this process and without summaries: for when a worker died on
    these items (fingerprints are plain hashing; summaries are left out)."""
    classified = [Classified(item, match_item(item, rules)) for item in items]
    return classified, [(fingerprint(c.item.text), ()) for c in classified if c.flagged]


def _rules(source: RulesSource) -> RuleSet:
    rules = _compiled.get(source.version)
    if rules is None:
        rules = parse_rules(source.data, source.path)
        _keep(rules)
    return rules


def _keep(rules: RuleSet) -> None:
    _compiled.pop(rules.version, None)  # the newest comes last
    _compiled[rules.version] = rules
    while len(_compiled) > KEPT_VERSIONS:
        del _compiled[next(iter(_compiled))]  # the oldest compiled
