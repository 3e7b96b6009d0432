"""Upgrading a database made by an earlier release keeps all its data."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlmodel import SQLModel

from metwatch.store import SqlStore, make_engine
from metwatch.store.engine import alembic_config, upgrade


def check_migrations_build_the_schema_the_models_describe(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with engine.connect() as c:
        differences = compare_metadata(MigrationContext.configure(c), SQLModel.metadata)
    engine.dispose()
    assert differences == []  # a model changed without a migration, or the reverse


def test_migrations_build_the_schema_the_models_describe(db_url: str) -> None:
    check_migrations_build_the_schema_the_models_describe(db_url)


def _item_in_a_story(c: Connection, now: datetime, *, revision: int = 1) -> int:
    """Item i1 (https://e.example/a) in a story of its own, as the first schema has
    them; returns the story's id."""
    c.execute(text(
        "INSERT INTO items (id, source_id, outlet, url, title, summary, body, seen_at, "
        "content_hash) VALUES ('i1', 's', 'Outlet', 'https://e.example/a', 'Title', '', "
        "'Body', :now, 'h')"
    ), {"now": now})  # fmt: skip
    c.execute(text("INSERT INTO stories (headline, first_seen, updated_at, revision) "
                   "VALUES ('Headline', :now, :now, :revision)"),
              {"now": now, "revision": revision})  # fmt: skip
    story_id = int(c.execute(text("SELECT id FROM stories")).scalar_one())
    c.execute(text("INSERT INTO story_items (story_id, item_id, position) VALUES (:s, 'i1', 0)"),
              {"s": story_id})  # fmt: skip
    return story_id


def test_upgrade_from_the_first_schema_keeps_data(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "0001")
    now = datetime(2024, 8, 15, tzinfo=UTC)
    with engine.begin() as c:
        _item_in_a_story(c, now, revision=3)
        c.execute(text("INSERT INTO subscribers (chat_id, chat_type, active, created_at) "
                       "VALUES (42, 'private', 1, :now)"), {"now": now})  # fmt: skip
        c.execute(
            text("INSERT INTO subscriptions (chat_id, target) VALUES (42, 'met-inspection')")
        )

    upgrade(engine)

    columns = {c["name"] for c in inspect(engine).get_columns("items")}
    assert "fingerprint" in columns
    store = SqlStore(engine)
    story = store.recent_stories(1)[0]
    assert (story.headline, story.revision, story.summary) == ("Headline", 3, ())
    assert story.links[0].url == "https://e.example/a" and story.links[0].copy_of is None
    assert store.follows(42) == {"met-inspection"} and store.is_active(42)


def check_links_are_added_and_taken_back_with_stories_in_place(url: str) -> None:
    """0010 (items.link): rows stored before show their canonical link; a downgrade
    drops the column with items in stories (SQLite refuses to rebuild a table other
    tables point at)."""
    engine = make_engine(url)
    upgrade(engine, "0009")
    with engine.begin() as c:
        story_id = _item_in_a_story(c, datetime(2024, 8, 15, tzinfo=UTC))
    upgrade(engine)
    store = SqlStore(engine)
    assert store.story(story_id).links[0].url == "https://e.example/a"
    with engine.begin() as c:
        c.execute(text("UPDATE items SET link = 'https://e.example/a?12345'"))
    assert store.story(story_id).links[0].url == "https://e.example/a?12345"

    command.downgrade(alembic_config(engine), "0009")

    assert "link" not in {c["name"] for c in inspect(engine).get_columns("items")}
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM story_items")).scalar_one() == 1
    upgrade(engine)
    engine.dispose()


def test_links_are_added_and_taken_back_with_stories_in_place(db_url: str) -> None:
    check_links_are_added_and_taken_back_with_stories_in_place(db_url)
