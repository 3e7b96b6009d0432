"""The same flagged article in two feeds (same canonical link, other GUIDs) is
stored once, in one story, owed once: the copy stored first wins, as for items
that are not flagged. A later copy with other text, of an article stored but not
flagged, is judged (once per text): if it matches, the stored article takes its
text and is filed.

Both polls find the article new before either stores it (one tick, or two
instances at once); the second is then skipped inside the filing transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

import metwatch.pipeline as pipeline_module
from classifiers.rules import RuleSet, load_rules
from metwatch.models import Classified, Item, PollOutcome, RawEntry, SourceSpec
from metwatch.pipeline import Pipeline
from metwatch.store import SqlStore, open_store
from metwatch.store.items import SortedItems
from metwatch.store.tables import DeliveryRow, ItemRow, StoryItemRow
from tests.conftest import RULES_PATH
from tests.metwatch.test_postgres import pg_url  # noqa: F401 (a fixture)
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, rss
from tests.support.seeds import SEEDS
from watchers.fetch import Fetcher
from watchers.normalise import normalise

NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)
CHAT = 1
LINK = "https://news.example.com/met-report"
HEADLINE = "Met police inadequate at managing sex offenders"
BODY = (SEEDS / "001_eb7dfda9019dc2e2.txt").read_text(encoding="utf-8")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, db_url: str) -> str:
    """The database, SQLite or PostgreSQL (skipped when unreachable)."""
    return db_url if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
def stores() -> Iterator[list[SqlStore]]:
    """Open stores on ``url`` (append to it), disposed of after the test."""
    opened: list[SqlStore] = []
    yield opened
    for store in opened:
        store.engine.dispose()


def _copy(n: int) -> FeedItem:
    """Outlet ``n``'s copy: its own GUID, the same link but for a tracking parameter."""
    return FeedItem(
        title=HEADLINE, guid=f"copy-{n}", link=f"{LINK}?utm_source=feed{n}", content=BODY
    )


def _pipeline(store: SqlStore, tmp_path: Path, client: httpx.AsyncClient,
              urls: dict[str, str]) -> Pipeline:  # fmt: skip
    sources = [{"id": k, "name": k, "url": v, "interval": 300} for k, v in urls.items()]
    rules: RuleSet = load_rules(write_rules(tmp_path, sources))
    fetcher = Fetcher(client, max_bytes=1_000_000, max_concurrent=4, per_host=2)
    pipeline = Pipeline(store, fetcher, rules, clock=lambda: NOW, failure_threshold=2)
    pipeline.sync_sources()
    store.subscribe(CHAT, [t.id for t in rules.topics], NOW)
    return pipeline


def _stored_once(store: SqlStore) -> int:
    """One item row with the link, one story member, one outbox row at revision 1;
    returns the story's id."""
    with store.engine.connect() as c:
        items = c.execute(select(ItemRow.id).where(ItemRow.url == LINK)).scalars().all()
        members = c.execute(select(StoryItemRow.story_id, StoryItemRow.item_id)).all()
        owed = c.execute(
            select(DeliveryRow.chat_id, DeliveryRow.story_id, DeliveryRow.wanted_revision)
        ).all()
    assert len(items) == 1
    [(story_id, member)] = members
    assert member == items[0]
    assert owed == [(CHAT, story_id, 1)]
    story = store.story(story_id)
    assert [link.url for link in story.links] == [LINK]
    assert story.revision == 1
    return story_id


async def test_one_tick_stores_a_flagged_article_in_two_feeds_once(
    url: str, stores: list[SqlStore], tmp_path: Path
) -> None:
    with FeedServer() as server:
        for n in range(2):
            server.serve(f"/f{n}.xml", rss([_copy(n)]))
        async with httpx.AsyncClient(timeout=2) as client:
            stores.append(open_store(url))
            urls = {f"f{n}": server.url(f"/f{n}.xml") for n in range(2)}
            pipeline = _pipeline(stores[0], tmp_path, client, urls)
            results = await pipeline.tick(everything=True)

    assert sorted(r.source_id for r in results) == ["f0", "f1"]
    assert all(isinstance(r.value, PollOutcome) for r in results)
    story_id = _stored_once(stores[0])
    # Nothing was recorded for the copy not filed: the filer is still in step.
    assert pipeline.stories._in_step == stores[0].story_changes()
    assert pipeline.stories.index.revision(story_id) == 1


def _racing_instances(
    url: str, stores: list[SqlStore], rules: RuleSet, monkeypatch: pytest.MonkeyPatch
) -> list[Pipeline]:
    """Two instances on ``url`` whose look-ups of what is new or edited each wait
    for the other's: both sort their feed before either stores it."""
    both_looked = threading.Barrier(2, timeout=10)
    pipelines: list[Pipeline] = []
    for _ in range(2):
        store = open_store(url)
        stores.append(store)
        sort_items = store.sort_items

        def looked_up(items: object, sort_items: object = sort_items) -> SortedItems:
            found: SortedItems = sort_items(items)  # type: ignore[operator]
            both_looked.wait()
            return found

        monkeypatch.setattr(store, "sort_items", looked_up)
        pipelines.append(Pipeline(store, None, rules, clock=lambda: NOW))  # type: ignore[arg-type]
    return pipelines


def test_instances_filing_the_article_at_once_store_it_once(
    url: str, stores: list[SqlStore], rules: RuleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances, each with one feed: both find the article new before either
    files it (the store's look-up waits for the other's), then file at once."""
    pipelines = _racing_instances(url, stores, rules, monkeypatch)
    stores[0].subscribe(CHAT, [t.id for t in rules.topics], NOW)

    def ingest(n: int) -> int:
        spec = SourceSpec(f"outlet-{n}", f"Outlet {n}", "feed", "file:", 300)
        copy = _copy(n)
        entry = RawEntry(copy.guid, copy.link, HEADLINE, "", BODY, NOW)
        return len(pipelines[n].ingest(spec, [entry]).flagged)

    with ThreadPoolExecutor(2) as pool:
        flagged = list(pool.map(ingest, range(2)))

    assert sorted(flagged) == [0, 1]  # the copy not filed is not reported new
    _stored_once(stores[0])


def test_a_flagged_copy_of_an_article_stored_unflagged_is_not_filed(
    url: str, stores: list[SqlStore], rules: RuleSet
) -> None:
    """The copy stored first was not flagged (a teaser, say): it still wins."""
    store = open_store(url)
    stores.append(store)
    store.subscribe(CHAT, [t.id for t in rules.topics], NOW)
    spec = SourceSpec("teasers", "Teasers", "feed", "file:", 300)
    pipeline = Pipeline(store, None, rules, clock=lambda: NOW)  # type: ignore[arg-type]
    teaser = RawEntry("teaser", f"{LINK}?utm_medium=rss", "A report", "Read more.", "", NOW)
    assert not pipeline.ingest(spec, [teaser]).flagged

    [stored] = store.iter_items()
    full = Item("other-id", "other", "Other", LINK, HEADLINE, "", BODY, NOW, "hash")
    store.record_flagged(Classified(full, ()), None, NOW)

    assert [i.id for i in store.iter_items()] == [stored.id]
    with store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(StoryItemRow)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(DeliveryRow)).scalar_one() == 0


def _count_classified(pipeline: Pipeline) -> list[str]:
    """The ids of the items ``pipeline`` classifies from now on, as they are classified."""
    classified: list[str] = []
    offload = pipeline.offload

    async def counting(fn: Any, rules: Any, items: Sequence[Item]) -> Any:
        classified.extend(i.id for i in items)
        return await offload(fn, rules, items)

    pipeline.offload = counting
    return classified


async def test_a_fuller_copy_in_another_feed_of_an_article_stored_unflagged_alerts_once(
    url: str, stores: list[SqlStore], tmp_path: Path
) -> None:
    """A feed lists the article with a line of text (not flagged, stored first);
    another lists it in full, under its own GUID: its text is judged, and the
    stored article takes it and is filed, once."""
    brief = FeedItem(title="A report", guid="brief", link=LINK, description="Read more inside.")
    with FeedServer() as server:
        server.serve("/brief.xml", rss([brief]))
        server.serve("/full.xml", rss([]))
        async with httpx.AsyncClient(timeout=2) as client:
            stores.append(open_store(url))
            store = stores[0]
            urls = {"brief": server.url("/brief.xml"), "full": server.url("/full.xml")}
            pipeline = _pipeline(store, tmp_path, client, urls)
            classified = _count_classified(pipeline)
            await pipeline.tick(everything=True)
            [stored] = store.iter_items()
            assert store.recent_stories(10) == []

            server.serve("/full.xml", rss([_copy(1)]))
            results = {r.source_id: r.value for r in await pipeline.tick(everything=True)}

            full = results["full"]
            assert isinstance(full, PollOutcome)
            assert full.new_items == ()  # the article is not new: the stored one took the text
            [flagged] = full.flagged
            assert flagged.item.id == stored.id
            assert _stored_once(store)
            [item] = store.iter_items()
            assert (item.id, item.title, item.source_id) == (stored.id, HEADLINE, "brief")

            # Polled again: the copy's text was judged, and the brief feed's entry is
            # unchanged (the stored text is the copy's, the hash still the entry's):
            # nothing is classified again, no one is told again.
            classified.clear()
            await pipeline.tick(everything=True)
            assert classified == []
            _stored_once(store)
            [item] = store.iter_items()
            assert item.title == HEADLINE


async def test_a_copy_that_does_not_match_is_judged_once_while_its_text_stays(
    db_url: str, tmp_path: Path
) -> None:
    brief = FeedItem(title="A report", guid="brief", link=LINK, description="Read more inside.")
    other = FeedItem(title="A report, in brief", guid="other", link=f"{LINK}?utm_source=x",
                     description="Still no details.")  # fmt: skip
    with FeedServer() as server:
        server.serve("/brief.xml", rss([brief]))
        server.serve("/other.xml", rss([]))
        async with httpx.AsyncClient(timeout=2) as client:
            store = open_store(db_url)
            urls = {"brief": server.url("/brief.xml"), "other": server.url("/other.xml")}
            pipeline = _pipeline(store, tmp_path, client, urls)
            await pipeline.tick(everything=True)
            [stored] = store.iter_items()
            classified = _count_classified(pipeline)
            server.serve("/other.xml", rss([other]))
            for _ in range(3):
                await pipeline.tick(everything=True)
            assert classified == [stored.id]  # judged at the first poll only
            # The rules file changes: the new rules may see it otherwise.
            pipeline.use_rules(load_rules(tmp_path / "watch-rules.yaml"))
            await pipeline.tick(everything=True)
            assert classified == [stored.id, stored.id]
            store.engine.dispose()

    [item] = store.iter_items()
    assert (item.id, item.title) == (stored.id, "A report")  # not written: it did not match


#: The brief entry's article written up, and another feed's version stating another finding.
WRITTEN_UP = (
    "Inspectors found that visits to registered sex offenders were announced in advance "
    "by the Metropolitan Police, giving offenders time to hide evidence."
)
OTHER_VERSION = (
    "HMICFRS inspectors said one high-risk offender had not been visited by the "
    "Metropolitan Police since 2017, the report said."
)
VISITS_CHAT, UNVISITED_CHAT = 11, 12
BRIEF = SourceSpec("brief", "Brief", "feed", "file:", 300)
FULL = SourceSpec("full", "Full", "feed", "file:", 300)


def _owed_chats(store: SqlStore) -> set[int]:
    with store.engine.connect() as c:
        return set(c.execute(select(DeliveryRow.chat_id)).scalars())


def test_an_edit_and_a_copy_of_one_article_at_once_each_give_their_findings(
    url: str, stores: list[SqlStore], rules: RuleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The article is stored unflagged; then its own feed writes it up (one
    finding) while another feed lists a version stating another, and two
    instances sort them before either stores: it is filed once, with both."""
    first = open_store(url)
    stores.append(first)
    first.subscribe(VISITS_CHAT, ["announced-visits"], NOW)
    first.subscribe(UNVISITED_CHAT, ["unvisited-since-2017"], NOW)
    brief = RawEntry("brief", LINK, "A report", "Read more inside.", "", NOW)
    Pipeline(first, None, rules, clock=lambda: NOW).ingest(BRIEF, [brief])  # type: ignore[arg-type]
    pipelines = _racing_instances(url, stores, rules, monkeypatch)
    edited = RawEntry("brief", LINK, HEADLINE, "", WRITTEN_UP, NOW)
    copy = RawEntry("copy-1", f"{LINK}?utm_source=x", HEADLINE, "", OTHER_VERSION, NOW)

    def ingest(n: int) -> None:
        spec, entry = [(BRIEF, edited), (FULL, copy)][n]
        pipelines[n].ingest(spec, [entry])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(ingest, range(2)))

    [story] = first.recent_stories(10)
    assert [link.url for link in story.links] == [LINK]
    assert {m.finding_id for m in story.matches} == {"announced-visits", "unvisited-since-2017"}
    assert _owed_chats(first) == {VISITS_CHAT, UNVISITED_CHAT}


def test_a_copy_of_a_flagged_article_gives_its_story_what_it_states_beyond_it(
    db_url: str, rules: RuleSet
) -> None:
    store = open_store(db_url)
    store.subscribe(VISITS_CHAT, ["announced-visits"], NOW)
    store.subscribe(UNVISITED_CHAT, ["unvisited-since-2017"], NOW)
    pipeline = Pipeline(store, None, rules, clock=lambda: NOW)  # type: ignore[arg-type]
    pipeline.ingest(BRIEF, [RawEntry("brief", LINK, HEADLINE, "", WRITTEN_UP, NOW)])
    [stored] = store.iter_items()
    assert _owed_chats(store) == {VISITS_CHAT}

    copy = RawEntry("copy-1", f"{LINK}?utm_source=x", HEADLINE, "", OTHER_VERSION, NOW)
    outcome = pipeline.ingest(FULL, [copy])

    assert outcome.new_items == ()
    assert [(c.item.id, [m.finding_id for m in c.matches]) for c in outcome.flagged] == [
        (stored.id, ["unvisited-since-2017"])
    ]
    assert _owed_chats(store) == {VISITS_CHAT, UNVISITED_CHAT}
    [item] = store.iter_items()
    assert (item.id, item.body) == (stored.id, stored.body)  # its own text stays
    [story] = store.recent_stories(10)
    assert story.revision == 2 and [link.url for link in story.links] == [LINK]
    # Listed again, the copy states nothing new.
    assert pipeline.ingest(FULL, [copy]).flagged == ()
    assert store.recent_stories(10)[0].revision == 2


def test_the_copys_text_stays_when_the_first_feed_lists_its_entry_unchanged(
    db_url: str, rules: RuleSet
) -> None:
    store = open_store(db_url)
    pipeline = Pipeline(store, None, rules, clock=lambda: NOW)  # type: ignore[arg-type]
    brief = RawEntry("brief", LINK, "A report", "Read more inside.", "", NOW)
    copy = RawEntry("copy-1", f"{LINK}?utm_source=x", HEADLINE, "", WRITTEN_UP, NOW)
    pipeline.ingest(BRIEF, [brief])
    assert pipeline.ingest(FULL, [copy]).flagged

    for _ in range(2):  # the brief feed's next polls: its entry has not changed
        outcome = pipeline.ingest(BRIEF, [brief])
        assert outcome.new_items == () and outcome.flagged == ()
    [item] = store.iter_items()
    assert (item.title, item.body) == (HEADLINE, WRITTEN_UP)
    [story] = store.recent_stories(10)
    assert [link.title for link in story.links] == [HEADLINE]

    # A real edit of the brief entry is still taken.
    pipeline.ingest(BRIEF, [replace(brief, title="A report (corrected)")])
    [item] = store.iter_items()
    assert item.title == "A report (corrected)"


def test_copies_judged_while_the_rules_change_are_judged_again_by_the_new_rules(
    db_url: str, rules: RuleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(db_url)
    pipeline = Pipeline(store, None, rules, clock=lambda: NOW)  # type: ignore[arg-type]
    pipeline.ingest(BRIEF, [RawEntry("brief", LINK, "A report", "Read more inside.", "", NOW)])
    copy = RawEntry("copy-1", f"{LINK}?utm_source=x", "A report", "Still no details.", "", NOW)
    judged_by: list[object] = []
    classify = pipeline_module.classify_and_prepare

    def reloading(rules_: Any, items: Sequence[Item]) -> Any:
        if items:
            judged_by.append(pipeline.rules)
            if len(judged_by) == 1:  # the rules file changes while this copy is judged
                pipeline.use_rules(load_rules(RULES_PATH))
        return classify(rules_, items)

    monkeypatch.setattr(pipeline_module, "classify_and_prepare", reloading)
    for _ in range(3):
        pipeline.ingest(FULL, [copy])

    assert len(judged_by) == 2  # by the old rules, then once by the new ones
    assert judged_by[1] is pipeline.rules


def test_a_version_filed_meanwhile_by_another_poll_gives_its_findings_and_keeps_the_text(
    db_url: str, rules: RuleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One tick: the full feed's version is sorted while the article is unflagged;
    the brief feed's write-up then files it; then the version is stored. It gives
    the story its finding (reported, and the index reloads the story), and does not
    replace the flagged article's text."""
    store = open_store(db_url)
    store.subscribe(UNVISITED_CHAT, ["unvisited-since-2017"], NOW)
    pipeline = Pipeline(store, None, rules, clock=lambda: NOW)  # type: ignore[arg-type]
    pipeline.ingest(BRIEF, [RawEntry("brief", LINK, "A report", "Read more inside.", "", NOW)])
    copy = RawEntry("copy-1", f"{LINK}?utm_source=x", HEADLINE, "", OTHER_VERSION, NOW)
    sorted_before = pipeline._sort([normalise(copy, FULL, NOW)])
    assert sorted_before.copies and not sorted_before.matched
    pipeline.ingest(BRIEF, [RawEntry("brief", LINK, HEADLINE, "", WRITTEN_UP, NOW)])
    monkeypatch.setattr(pipeline, "_sort", lambda items: sorted_before)

    outcome = pipeline.ingest(FULL, [copy])

    assert [m.finding_id for c in outcome.flagged for m in c.matches] == ["unvisited-since-2017"]
    [story] = store.recent_stories(10)
    assert {m.finding_id for m in story.matches} == {"announced-visits", "unvisited-since-2017"}
    assert _owed_chats(store) == {UNVISITED_CHAT}
    filer = pipeline.stories
    assert filer._in_step is None or filer.index.revision(story.id) == story.revision
    [item] = store.iter_items()
    assert item.body == WRITTEN_UP  # the flagged article's own text


def test_an_edit_stating_only_what_its_story_states_already_owes_no_one_anything(
    db_url: str, rules: RuleSet
) -> None:
    store = open_store(db_url)
    store.subscribe(CHAT, ["met-inspection"], NOW)
    pipeline = Pipeline(store, None, rules, clock=lambda: NOW)  # type: ignore[arg-type]
    other = SourceSpec("other", "Other", "feed", "file:", 300)
    pipeline.ingest(other, [RawEntry("y", "https://other.example/y", HEADLINE, "",
                                     f"{OTHER_VERSION} {WRITTEN_UP}", NOW)])  # fmt: skip
    pipeline.ingest(BRIEF, [RawEntry("brief", LINK, HEADLINE, "", WRITTEN_UP, NOW)])
    [story] = store.recent_stories(10)
    assert len(story.links) == 2
    with store.engine.begin() as c:  # the chat has the story as it stands
        c.execute(update(DeliveryRow).values(status="sent", sent_revision=story.revision))

    # The brief entry now states the finding the other outlet's did.
    pipeline.ingest(BRIEF, [RawEntry("brief", LINK, HEADLINE, "", f"{WRITTEN_UP} {OTHER_VERSION}",
                                     NOW)])  # fmt: skip

    after = store.story(story.id)
    assert after.revision == story.revision
    with store.engine.connect() as c:
        rows = c.execute(select(DeliveryRow.status, DeliveryRow.wanted_revision)).all()
    assert rows == [("sent", story.revision)]


def test_a_matching_version_of_an_article_stored_under_two_ids_is_filed(
    db_url: str, rules: RuleSet
) -> None:
    """Two instances can store one article under two ids at once (each found it new).
    A version that matches later is still filed, under one of them, once."""
    store = open_store(db_url)
    store.subscribe(CHAT, ["met-inspection"], NOW)
    pipeline = Pipeline(store, None, rules, clock=lambda: NOW)  # type: ignore[arg-type]
    other = SourceSpec("other", "Other", "feed", "file:", 300)
    first = normalise(RawEntry("brief", LINK, "A report", "Read more.", "", NOW), BRIEF, NOW)
    second = normalise(RawEntry("b", f"{LINK}?utm_source=b", "A report", "In brief.", "", NOW),
                       other, NOW)  # fmt: skip
    store.insert_items([first, second], NOW)  # as two instances' inserts at once leave it
    copy = RawEntry("copy-1", f"{LINK}?utm_source=x", HEADLINE, "", WRITTEN_UP, NOW)

    flagged = [pipeline.ingest(FULL, [copy]).flagged for _ in range(2)]

    assert [len(f) for f in flagged] == [1, 0]
    [story] = store.recent_stories(10)
    assert [link.title for link in story.links] == [HEADLINE]
    assert _owed_chats(store) == {CHAT}
