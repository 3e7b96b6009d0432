"""Engine creation and schema migrations (Alembic), applied on every start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from metwatch.errors import SettingsError, StoreError
from metwatch.store.sql import SqlStore

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout.

    Raises:
        SettingsError: the URL is not a database URL metwatch can use.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise SettingsError(f"METWATCH_DATABASE_URL: not a database URL: {url!r}") from e
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (all of them by default).

    Raises:
        StoreError: the database cannot be reached.
    """
    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as e:
        raise StoreError(f"cannot migrate the database: {str(e.orig).splitlines()[0]}") from e


def open_store(url: str) -> SqlStore:
    """Connect, bring the schema up to date, and return the store."""
    engine = make_engine(url)
    upgrade(engine)
    return SqlStore(engine)
