"""Shared plumbing of the store: sessions, error wrapping, the meta table.

Database failures that are not programming errors (connection lost, database
locked) become ``StoreError``; everything else propagates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from metwatch.errors import StoreError
from metwatch.store.tables import (
    MetaRow,
)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything metwatch stores is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class StoreBase:
    """A database engine and the sessions over it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except OperationalError as e:
            # Connection lost, database locked or unreachable; not our bug.
            raise StoreError(f"database error: {str(e.orig).splitlines()[0]}") from e

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """One transaction for Core statements, without the ORM's session: for the
        statements metwatch runs per poll and per flagged item."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except OperationalError as e:
            raise StoreError(f"database error: {str(e.orig).splitlines()[0]}") from e

    def _upsert(
        self, table: Table, *, index_elements: list[str], from_row: tuple[str, ...] = (),
        set_: dict[str, object] | None = None, where: ColumnElement[bool] | None = None,
    ) -> Any:  # fmt: skip
        """INSERT that, on a conflict over ``index_elements``, updates the columns
        ``from_row`` to the values it carried and ``set_`` to constants, in the rows
        that meet ``where`` (or does nothing), in this database's dialect.

        Statements run per item are built once per store (``cached_property``):
        building one costs more than SQLite running it.
        """
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(table)
        updates = {**(set_ or {}), **{c: statement.excluded[c] for c in from_row}}
        if updates:
            return statement.on_conflict_do_update(
                index_elements=index_elements, set_=updates, where=where
            )
        return statement.on_conflict_do_nothing(index_elements=index_elements)

    def get_meta(self, key: str) -> str | None:
        with self._session() as s:
            row = s.get(MetaRow, key)
            return row.value if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._session() as s:
            row = s.get(MetaRow, key)
            if row is None:
                s.add(MetaRow(key=key, value=value))
            else:
                row.value = value
