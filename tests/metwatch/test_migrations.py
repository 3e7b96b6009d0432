"""Upgrading a database made by an earlier release keeps all its data."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from metwatch.store import SqlStore, make_engine
from metwatch.store.engine import upgrade


def check_migrations_build_the_schema_the_models_describe(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with engine.connect() as c:
        differences = compare_metadata(MigrationContext.configure(c), SQLModel.metadata)
    engine.dispose()
    assert differences == []  # a model changed without a migration, or the reverse


def test_migrations_build_the_schema_the_models_describe(db_url: str) -> None:
    check_migrations_build_the_schema_the_models_describe(db_url)


def test_upgrade_from_the_first_schema_keeps_data(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "0001")
    now = datetime(2024, 8, 15, tzinfo=UTC)
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO items (id, source_id, outlet, url, title, summary, body, seen_at, "
            "content_hash) VALUES ('i1', 's', 'Outlet', 'https://e.example/a', 'Title', '', "
            "'Body', :now, 'h')"
        ), {"now": now})  # fmt: skip
        c.execute(text(
            "INSERT INTO stories (headline, first_seen, updated_at, revision) "
            "VALUES ('Headline', :now, :now, 3)"
        ), {"now": now})  # fmt: skip
        c.execute(
            text("INSERT INTO story_items (story_id, item_id, position) VALUES (1, 'i1', 0)")
        )
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
