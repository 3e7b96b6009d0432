"""Clustering candidates held in memory stay in step with the store, also when
another instance files items into the same database."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.fingerprints import fingerprint
from bot.stories import (
    DEFAULT_POLICY,
    Assignment,
    ItemFeatures,
    StoryCandidate,
    StoryIndex,
    _assess,
    _Probe,
    _rank,
)
from classifiers.rules import RuleSet
from metwatch.pipeline import Pipeline
from metwatch.store import SqlStore, open_store
from tests.support.seeds import META, SEEDS, ingest_seed

NOW = datetime(2024, 8, 15, 18, 0, tzinfo=UTC)
LABELLED = Path(__file__).resolve().parents[1] / "data" / "labelled"
MET = frozenset({"met-inspection"})


def _pipeline(store: SqlStore, rules: RuleSet) -> Pipeline:
    return Pipeline(store, None, rules, clock=lambda: NOW)  # type: ignore[arg-type]


def _story_ids(store: SqlStore) -> list[int]:
    return [story_id for story_id, _ in store.recent_story_revisions()]


def test_two_instances_file_the_seeds_under_one_story(db_url: str, rules: RuleSet) -> None:
    first, second = open_store(db_url), open_store(db_url)
    a, b = _pipeline(first, rules), _pipeline(second, rules)

    ingest_seed(a, 0)  # a opens the story
    ingest_seed(b, 1)  # b has never seen it: loads it, joins it
    ingest_seed(a, 2)  # a holds revision 1, the store has 2: a reloads, joins
    ingest_seed(b, 3)
    ingest_seed(b, 4)

    [story_id] = _story_ids(first)
    story = first.story(story_id)
    assert [link.url for link in story.links] == [
        f"https://outlet{n}.example/report" for n in range(5)
    ]
    # Each index holds the revision the store has: nothing stale is compared with.
    assert a.stories.index.revision(story_id) == 3  # its own view before b's last two
    a.stories.sync()
    assert a.stories.index.revision(story_id) == b.stories.index.revision(story_id) == 5


def test_a_story_deleted_elsewhere_is_forgotten(db_url: str, rules: RuleSet) -> None:
    store = open_store(db_url)
    pipeline = _pipeline(store, rules)
    ingest_seed(pipeline, 0)
    assert len(pipeline.stories.index) == 1

    with store.engine.begin() as conn:
        for table in ("deliveries", "story_items", "stories"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    pipeline.stories.sync()

    assert len(pipeline.stories.index) == 0


def _features(item_id: str, text: str, published: datetime) -> ItemFeatures:
    findings = frozenset({"graded-inadequate"})
    return ItemFeatures(item_id, fingerprint(text), findings, MET, published)


def test_the_index_keeps_the_newest_stories_only() -> None:
    index = StoryIndex(capacity=3)
    for n in range(5):
        when = NOW + timedelta(minutes=n)
        index.record(n + 1, _features(f"i{n}", f"story number {n} words", when), first_seen=when)

    assert len(index) == 3
    assert [index.revision(n) for n in range(1, 6)] == [None, None, 1, 1, 1]


def test_stories_first_seen_before_the_window_are_not_candidates() -> None:
    text = (SEEDS / META[0]["file"]).read_text(encoding="utf-8")
    copy = _features("copy", text, NOW)
    index = StoryIndex()
    index.put(StoryCandidate(7, NOW - timedelta(days=1), (_features("orig", text, NOW),)))

    assert index.assign(copy, now=NOW).story_id == 7
    assert index.assign(copy, now=NOW, since=NOW - timedelta(hours=1)).story_id is None


def check_a_story_opened_meanwhile_is_joined(db_url: str, rules: RuleSet) -> None:
    """Instance b files seed 0 just after a has read the stories to decide on seed 1:
    a must join b's story, not open a second one for the same report."""
    first, second = open_store(db_url), open_store(db_url)
    a, b = _pipeline(first, rules), _pipeline(second, rules)
    read = first.recent_story_revisions
    calls = 0

    def read_then_b_files(limit: int = 200) -> list[tuple[int, int]]:
        nonlocal calls
        calls += 1
        seen = read(limit)
        if calls == 1:
            ingest_seed(b, 0)  # lands between a's read and a's write
        return seen

    first.recent_story_revisions = read_then_b_files  # type: ignore[method-assign]
    try:
        ingest_seed(a, 1)

        assert calls == 2  # a decided again on the stories as they now are
        [story_id] = _story_ids(first)
        assert len(first.story(story_id).links) == 2
    finally:
        first.engine.dispose()
        second.engine.dispose()


def test_a_story_opened_meanwhile_is_joined(db_url: str, rules: RuleSet) -> None:
    check_a_story_opened_meanwhile_is_joined(db_url, rules)


def _variants(text: str) -> list[str]:
    """The text, and copies as other sites run them: another headline, the last
    line cut, a line dropped from the middle (some above the syndication
    threshold, some below)."""
    lines = text.splitlines()
    middle = len(lines) // 2
    return [
        text,
        "\n".join(["Reposted: " + lines[0], *lines[1:]]),
        "\n".join(lines[:-1]),
        "\n".join(lines[:middle] + lines[middle + 1 :]),
    ]


def _reference(index: StoryIndex, item: ItemFeatures) -> Assignment:
    """The decision of ``index.assign`` made without its syndication pre-check:
    every member of every story compared."""
    probe, window = _Probe(item, NOW), timedelta(days=DEFAULT_POLICY.window_days)
    found = [_assess(probe, s, NOW, window, DEFAULT_POLICY, True) for s in index._stories.values()]
    best: Assignment | None = None
    for a in found:
        if a is not None and (best is None or _rank(a) > _rank(best)):
            best = a
    return best if best is not None else Assignment(None, "new")


def test_the_syndication_pre_check_changes_no_decision() -> None:
    articles = [*sorted(LABELLED.glob("*.txt")), *(SEEDS / m["file"] for m in META)]
    texts = [p.read_text(encoding="utf-8") for p in articles]
    items = [
        _features(f"{n}-{v}", variant, NOW - timedelta(minutes=n))
        for n, text in enumerate(texts)
        for v, variant in enumerate(_variants(text))
    ]
    index = StoryIndex(capacity=12)  # small: stories are evicted and their hashes dropped
    copies = 0
    for n, item in enumerate(items):
        decision = index.assign(item, now=NOW)
        assert decision == _reference(index, item)
        copies += decision.reason == "syndicated"
        story_id = decision.story_id or 1000 + n
        index.record(story_id, item, first_seen=NOW - timedelta(minutes=len(items) - n))
        if n % 7 == 0:  # reloaded from the store as it stands: replaced, not added twice
            index.put(StoryCandidate(story_id, NOW, (item,)), revision=9)
    # The variants did exercise the copy path, both ways.
    assert 20 < copies < len(items) - len(texts)
    held = {h for s in index._stories.values() for h in s.sketch_hashes}
    assert set(index._holders) == held  # nothing left behind by evictions or replacements


def check_instances_filing_at_once_keep_one_story(db_url: str, rules: RuleSet) -> None:
    """Four instances file coverage of one event at the same moment, each its own
    copy of the five seeds: one story, every item in it once, every write counted."""
    instances = 4
    stores = [open_store(db_url) for _ in range(instances)]
    start = threading.Barrier(instances)

    def file_seeds(k: int) -> None:
        pipeline = _pipeline(stores[k], rules)
        start.wait()
        for n in range(len(META)):
            ingest_seed(pipeline, n, copy=f"-{k}")

    try:
        with ThreadPoolExecutor(instances) as pool:
            list(pool.map(file_seeds, range(instances)))
        [story_id] = _story_ids(stores[0])
        links = [link.url for link in stores[0].story(story_id).links]
        assert sorted(links) == sorted(
            f"https://outlet{n}-{k}.example/report"
            for n in range(len(META))
            for k in range(instances)
        )
        assert stores[0].story_changes() == instances * len(META)
    finally:
        for store in stores:
            store.engine.dispose()


def test_instances_filing_at_once_keep_one_story(db_url: str, rules: RuleSet) -> None:
    check_instances_filing_at_once_keep_one_story(db_url, rules)
