"""``metwatch preview``: one source read now, as a poll would read it; nothing kept.

For whoever edits the rules file: does this feed answer, how is it read, which
identity do its items get, is a page's selector right, and which items would be
flagged, with the sentence that proves each finding. It fetches once, without
conditional headers, through the same fetcher, reader and classifier as the
service, and stores and sends nothing, so it can run beside a running service.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

import click

from classifiers.match import match_item
from classifiers.rules import RuleSet, load_rules
from metwatch.app import build_fetch_limits, build_fetcher, utc_now
from metwatch.cli.common import RULES_OPTION, echo, errors, settings_from_env
from metwatch.errors import SourceError
from metwatch.models import FetchResult, Item, Match, SourceSpec
from metwatch.offload import ReadFeed, normalised
from metwatch.reading import SourceReader
from metwatch.settings import Settings
from watchers.crawl_policy import CrawlPolicy
from watchers.fastparse import Reading
from watchers.fetch import Fetcher
from watchers.fulltext import ArticleTexts
from watchers.normalise import first_of_each, identity_basis

KINDS = ("feed", "page", "sitemap")
_READINGS: dict[Reading, str] = {
    "subset": "fastfeedparser (the body is inside the proven subset)",
    "same": "feedparser; fastfeedparser read it the same (a source gets the fast path after "
    "three such bodies)",
    "different": "feedparser; fastfeedparser read it differently, so this source stays on "
    "feedparser",
    "none": "feedparser",
}


@dataclass(frozen=True, slots=True)
class PreviewItem:
    item: Item
    identity: str
    #: What became of a teaser-only item's full text ("" for other items).
    teaser: str
    matches: tuple[Match, ...]


@click.command()
@click.argument("target")
@RULES_OPTION
@click.option("--kind", type=click.Choice(KINDS), help="How to read it (default: the source's "
              "kind; feed for a URL).")  # fmt: skip
@click.option("--link-selector", help="CSS selector of article links, for a page "
              "(overrides the source's).")  # fmt: skip
@click.option("--limit", default=20, show_default=True, help="Items shown (counts cover all).")
@click.option("--flagged", "flagged_only", is_flag=True, help="Show flagged items only.")
@click.option("--full-text", is_flag=True, help="Fetch teaser-only items' article pages "
              "(as a poll does, robots.txt obeyed) and classify their full text.")  # fmt: skip
def preview(
    target: str, rules: str | None, kind: str | None, link_selector: str | None, limit: int,
    flagged_only: bool, full_text: bool,
) -> None:  # fmt: skip
    """Fetch one source now (a source id from the rules file, or a URL) and show what
    metwatch reads from it: its items, their identity and the findings they would
    flag. Nothing is stored or sent. Exits 1 when the source fails."""
    settings = settings_from_env(rules)
    with errors():
        ruleset = load_rules(settings.rules_path)
    spec = _spec(target, ruleset, settings, kind, link_selector)
    echo(f"{spec.id}  {spec.name}  {spec.url}  ({spec.kind})")
    try:
        shown = asyncio.run(_preview(spec, ruleset, settings, full_text=full_text))
    except SourceError as e:
        echo(f"failed: {e.message}", err=True)
        sys.exit(1)
    _print_items(shown, limit, flagged_only)


def _spec(
    target: str, rules: RuleSet, settings: Settings, kind: str | None, selector: str | None
) -> SourceSpec:
    spec = next((s for s in rules.sources if s.id == target), None)
    if spec is None and (spec := _disabled(rules, target)) is not None:
        echo(f"{target} is disabled in {settings.rules_path}: shown here, not polled")
    if spec is None:
        if not target.startswith(("http://", "https://")):
            known = ", ".join(s.id for s in rules.sources) or "none"
            raise click.UsageError(
                f"{target!r} is neither a source id of {settings.rules_path} (enabled ones: "
                f"{known}) nor an http(s) URL"
            )
        host = urlsplit(target).hostname or target
        spec = SourceSpec("preview", host, "feed", target, 900)
    spec = replace(spec, kind=kind or spec.kind, link_selector=selector or spec.link_selector)
    if spec.kind == "page" and not spec.link_selector:
        raise click.UsageError("a page is read through a CSS selector: give --link-selector")
    return spec


def _disabled(rules: RuleSet, source_id: str) -> SourceSpec | None:
    return next((s for s in rules.disabled_sources if s.id == source_id), None)


async def _preview(
    spec: SourceSpec, rules: RuleSet, settings: Settings, *, full_text: bool
) -> list[PreviewItem]:
    limits = build_fetch_limits(settings)  # one set for both, as the service has
    fetcher = build_fetcher(settings, limits=limits)
    documents = build_fetcher(
        settings, public_only=not settings.allow_private_addresses, limits=limits
    )
    private = settings.allow_private_addresses
    reader = SourceReader(
        documents, allow_private=private, fulltext_min_chars=settings.fulltext_min_chars
    )
    try:
        started = time.perf_counter()
        fetched = await fetcher.fetch(spec.url)
        took = time.perf_counter() - started
        read = await reader.entries(spec, fetched)
        _print_fetch(fetched, took, read.feed.refresh_hint, spec, read.reading)
        entries = read.feed.entries
        items = normalised(entries, spec, utc_now(), settings.fulltext_min_chars)
        texts, notes = await _full_texts(items, documents, settings, fetch=full_text)
    finally:
        await fetcher.client.aclose()
        await documents.client.aclose()
    shown: list[PreviewItem] = []
    for n in first_of_each(items.items):  # a repeat of an id or link: a poll keeps the first
        item_id = items.items[n].id
        text = texts[item_id]
        shown.append(PreviewItem(text, identity_basis(entries[n]), notes.get(item_id, ""),
                                 tuple(match_item(text, rules))))  # fmt: skip
    repeats = len(entries) - len(shown)
    again = f" ({repeats} repeated within the body, kept once)" if repeats else ""
    echo(f"{_count(len(entries), 'entry', 'entries')}: {_count(len(shown), 'item')}{again}")
    return shown


async def _full_texts(
    read: ReadFeed, fetcher: Fetcher, settings: Settings, *, fetch: bool
) -> tuple[dict[str, Item], dict[str, str]]:
    """Each item by id (the first of repeats, as a poll keeps), with its article's
    text when ``fetch``; and what became of each teaser-only item's full text."""
    texts: dict[str, Item] = {}
    for item in read.items:
        texts.setdefault(item.id, item)
    later = "teaser only: its article page is fetched when polled (--full-text: now)"
    notes = dict.fromkeys(read.teasers, later)
    if not fetch:
        return texts, notes
    policy = CrawlPolicy(fetcher, settings.user_agent) if settings.obey_robots_txt else None
    articles = ArticleTexts(fetcher, allow_private=settings.allow_private_addresses,
                            policy=policy)  # fmt: skip
    for item_id, teaser in read.teasers.items():
        item = texts[item_id]
        try:
            texts[item_id] = await articles.with_text(item, teaser)
        except SourceError as e:
            notes[item_id] = f"teaser only: no full text ({e.message})"
            continue
        got = len(texts[item_id].body) if texts[item_id] is not item else 0
        notes[item_id] = (f"full text from its article page: {got:,} characters" if got
                          else "teaser only: its article page has no main text")  # fmt: skip
    return texts, notes


def _print_fetch(
    fetched: FetchResult, took: float, refresh_hint: float | None, spec: SourceSpec,
    reading: Reading,
) -> None:  # fmt: skip
    kind = fetched.content_type.split(";")[0] or "no content type"
    echo(f"fetched: HTTP {fetched.status}, {kind}, {len(fetched.content):,} bytes "
         f"in {took:.2f} s")  # fmt: skip
    if fetched.final_url != spec.url:
        moved = "permanently" if fetched.moved_to else "temporarily"
        echo(f"redirected {moved} to {fetched.final_url}")
    if spec.kind == "feed":
        echo(f"read by: {_READINGS[reading]}")
    hints = [f"{name} {seconds:g} s" for name, seconds in
             (("its headers ask for", fetched.wait_hint), ("the feed asks for", refresh_hint))
             if seconds is not None]  # fmt: skip
    if hints:
        echo(f"between polls: {'; '.join(hints)}; interval {spec.interval} s "
             "(metwatch never polls sooner than the site asks, up to a day)")  # fmt: skip


def _print_items(shown: list[PreviewItem], limit: int, flagged_only: bool) -> None:
    listed = [p for p in shown if p.matches] if flagged_only else shown
    for n, p in enumerate(listed[:limit], start=1):
        item = p.item
        echo(f"\n{n:>3}. {item.title}")
        echo(f"     {item.shown_link or '(no link)'}")
        notes = [f"published {_when(item.published)}", f"identity: {p.identity}"]
        if p.teaser:
            notes.append(p.teaser)
        echo(f"     {' · '.join(notes)}")
        for m in p.matches:
            label = f"topic {m.topic_id} only" if m.topic_only else f"finding {m.finding_id}"
            echo(f"     FLAGGED {label} ({m.title})")
            for e in m.evidence[:1]:
                echo(f"       “{e.sentence}”")
    if len(listed) > limit:
        echo(f"\n... and {len(listed) - limit} more (--limit)")
    flagged = [p for p in shown if p.matches]
    counts = Counter(m.finding_id for p in flagged for m in p.matches)
    tally = ", ".join(f"{fid} {n}" for fid, n in counts.most_common())
    teasers = sum(p.teaser.startswith("teaser only") for p in shown)
    echo(f"\n{len(flagged)} of {len(shown)} items flagged" + (f" ({tally})" if tally else "")
         + (f"; {teasers} teaser-only" if teasers else "")
         + ". Nothing was stored or sent.")  # fmt: skip


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "(no date)"
