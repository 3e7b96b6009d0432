"""Several instances sharing PostgreSQL: every due source is claimed by exactly one."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from classifiers.rules import RuleSet
from metwatch.models import Item, SourceSpec
from metwatch.store import open_store
from tests.metwatch.test_migrations import (
    check_links_are_added_and_taken_back_with_stories_in_place,
    check_migrations_build_the_schema_the_models_describe,
)
from tests.metwatch.test_source_batches import (
    check_batch_equals_one_by_one,
    check_claims_in_due_order,
    check_unknown_source_records_nothing,
)
from tests.metwatch.test_story_index import (
    check_a_story_opened_meanwhile_is_joined,
    check_instances_filing_at_once_keep_one_story,
)
from tests.watchers.test_gaps import (
    check_a_poll_of_the_old_reading_restores_nothing,
    check_racing_instances_alert_one_gap_once,
)
from tests.watchers.test_moved_sources import (
    check_a_move_found_for_an_address_the_rules_no_longer_have_is_dropped,
)
from tests.watchers.test_polling import check_a_feed_of_70000_entries_is_sorted_and_stored

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    name = f"metwatch_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as e:
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432: {e.orig}")
    try:
        yield f"{SERVER}/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migrations_build_the_schema_the_models_describe_on_postgres(pg_url: str) -> None:
    check_migrations_build_the_schema_the_models_describe(pg_url)


def test_links_are_added_and_taken_back_on_postgres(pg_url: str) -> None:
    check_links_are_added_and_taken_back_with_stories_in_place(pg_url)


def test_moved_sources_on_postgres(pg_url: str) -> None:
    check_a_move_found_for_an_address_the_rules_no_longer_have_is_dropped(pg_url)


def test_racing_instances_alert_one_gap_once_on_postgres(pg_url: str) -> None:
    check_racing_instances_alert_one_gap_once(pg_url)


def test_a_poll_of_the_old_reading_restores_nothing_on_postgres(pg_url: str) -> None:
    check_a_poll_of_the_old_reading_restores_nothing(pg_url)


def test_instances_never_claim_the_same_source(pg_url: str) -> None:
    instances = [open_store(pg_url) for _ in range(4)]
    specs = [
        SourceSpec(f"s{n}", f"S{n}", "feed", f"http://127.0.0.1:9/{n}", 300) for n in range(50)
    ]
    instances[0].sync_sources(specs, lambda s: NOW - timedelta(seconds=1))

    def claim(n: int) -> list[str]:
        got: list[str] = []
        for _ in range(5):
            got += [s.id for s in instances[n].claim_due_sources(NOW, limit=20)]
        return got

    with ThreadPoolExecutor(4) as pool:
        claimed = [sid for ids in pool.map(claim, range(4)) for sid in ids]

    assert sorted(claimed) == sorted(s.id for s in specs)  # each exactly once
    assert instances[1].claim_due_sources(NOW) == []  # leased: nothing due any more
    for store in instances:
        store.engine.dispose()


def test_claim_is_one_locking_statement(pg_url: str) -> None:
    (sent,) = check_claims_in_due_order(pg_url, statements_per_claim=1)
    assert "FOR UPDATE SKIP LOCKED" in sent


def test_batch_of_not_modified_on_postgres(pg_url: str) -> None:
    check_batch_equals_one_by_one(pg_url)
    check_unknown_source_records_nothing(pg_url)


def test_schema_and_outbox_work_on_postgres(pg_url: str) -> None:
    store = open_store(pg_url)
    store.subscribe(-1001234567890, ["met-inspection"], NOW, chat_type="supergroup")
    assert store.follows(-1001234567890) == {"met-inspection"}
    assert store.ping()
    store.engine.dispose()


def test_instances_do_not_open_two_stories_for_one_event(pg_url: str, rules: RuleSet) -> None:
    # The same race as on SQLite; PostgreSQL serialises the writes on the counter's row.
    check_a_story_opened_meanwhile_is_joined(pg_url, rules)


def test_instances_filing_at_once_keep_one_story_on_postgres(pg_url: str, rules: RuleSet) -> None:
    check_instances_filing_at_once_keep_one_story(pg_url, rules)


def test_a_feed_of_70000_entries_is_sorted_and_stored_on_postgres(pg_url: str) -> None:
    check_a_feed_of_70000_entries_is_sorted_and_stored(pg_url)


def test_instances_storing_one_article_at_once_store_it_once(pg_url: str) -> None:
    # Two instances poll two feeds that list one article under their own ids; both
    # find it new, and store it at the same moment. The first instance's
    # transaction is held open after its INSERT, till the second has stored (or
    # waits on the first): the second must then see the first's row.
    first, second = open_store(pg_url), open_store(pg_url)
    mine = _article("feed-a", "a-1")
    theirs = _article("feed-b", "b-9")
    assert first.sort_items([mine]).new == (mine,)
    assert second.sort_items([theirs]).new == (theirs,)
    inserted, release = threading.Event(), threading.Event()

    def hold_after_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO items"):
            inserted.set()
            release.wait(10)

    event.listen(first.engine, "after_cursor_execute", hold_after_insert)
    look = create_engine(pg_url)
    try:
        with ThreadPoolExecutor(2) as pool:
            storing = pool.submit(first.insert_items, [mine], NOW)
            assert inserted.wait(10)
            racing = pool.submit(second.insert_items, [theirs], NOW)
            deadline = time.monotonic() + 10
            while not racing.done() and not _waits_on_a_lock(look):
                assert time.monotonic() < deadline, "the second instance neither stored nor waited"
                time.sleep(0.05)
            release.set()
            storing.result(timeout=10)
            racing.result(timeout=10)
        with look.connect() as c:
            stored = c.execute(text("SELECT id FROM items WHERE url = :u"), {"u": mine.url})
            assert [row.id for row in stored] == [mine.id]
    finally:
        release.set()
        for engine in (first.engine, second.engine, look):
            engine.dispose()


def _article(source_id: str, item_id: str) -> Item:
    return Item(
        item_id, source_id, source_id, "https://outlet.example/met-inspection", "Met graded",
        "", "The Met was graded inadequate.", NOW, f"hash-{item_id}",
    )  # fmt: skip


def _waits_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as c:
        waiting = c.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND wait_event_type = 'Lock'")
        ).scalar_one()  # fmt: skip
    return bool(waiting)
