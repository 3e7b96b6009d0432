"""A poll's new items are stored in ONE transaction: the flagged ones with their
matches, stories and outbox rows, and the others beside them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from classifiers.rules import RuleSet
from metwatch.models import RawEntry, SourceSpec
from metwatch.pipeline import Pipeline
from metwatch.store import SqlStore, open_store
from tests.support.seeds import META, SEEDS
from watchers.article import article_from_text

NOW = datetime(2024, 8, 15, 18, 0, tzinfo=UTC)
SPEC = SourceSpec("wire", "Wire", "feed", "file:", 3600)
UNRELATED = RawEntry(
    guid="weather", link="https://wire.example/weather", title="Sunny spells for London",
    summary="Warm weather is expected across the capital this weekend.", content="",
    published=datetime(2024, 8, 15, 5, tzinfo=UTC),
)  # fmt: skip
#: Refuses the third seed's story membership, as a full disk or a lost connection would.
REFUSE_THIRD = """
CREATE TRIGGER refuse_third BEFORE INSERT ON story_items
WHEN NEW.item_id IN (SELECT id FROM items WHERE url = 'https://wire.example/2')
BEGIN SELECT RAISE(ABORT, 'refused'); END
"""


def _seeds() -> list[RawEntry]:
    """The five seeds as one wire feed's entries."""
    return [
        article_from_text(
            (SEEDS / seed["file"]).read_text(encoding="utf-8"),
            headline=seed["headline"],
            link=f"https://wire.example/{n}",
            published=datetime(2024, 8, 15, 6 + n, tzinfo=UTC),
        )  # fmt: skip
        for n, seed in enumerate(META)
    ]


def _count(store: SqlStore, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())  # noqa: S608


def test_one_poll_files_its_items_in_one_transaction(db_url: str, rules: RuleSet) -> None:
    store = open_store(db_url)
    store.subscribe(7, ["met-inspection"], NOW)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(REFUSE_THIRD)
    pipeline = Pipeline(store, None, rules, clock=lambda: NOW)  # type: ignore[arg-type]
    entries = [UNRELATED, *_seeds()]

    with pytest.raises(IntegrityError, match="refused"):
        pipeline.ingest(SPEC, entries)

    # The first two seeds were written before the third was refused: rolled back
    # with it, and so was the unflagged item. Nothing of the poll is stored.
    for table in ("items", "matches", "stories", "story_items", "deliveries"):
        assert _count(store, table) == 0, table
    assert store.story_changes() == 0
    assert len(pipeline.stories.index) == 0  # nothing the store does not hold

    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse_third")
    outcome = pipeline.ingest(SPEC, entries)

    assert len(outcome.new_items) == 6
    assert len(outcome.flagged) == 5
    assert _count(store, "items") == 6
    # The seeds cover one event: each joined the story the first opened, within
    # the same transaction; the chat is owed it once.
    [(story_id, revision)] = store.recent_story_revisions()
    assert revision == 5
    links = [link.url for link in store.story(story_id).links]
    assert links == [f"https://wire.example/{n}" for n in range(5)]
    assert _count(store, "deliveries") == 1
    assert store.story_changes() == 1  # one poll, one change
    assert pipeline.stories.index.revision(story_id) == 5
    assert pipeline.ingest(SPEC, entries).new_items == ()  # and never again
