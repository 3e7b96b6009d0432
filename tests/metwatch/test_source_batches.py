"""A polling tick's source writes in few statements: one claim, one batch of 304s.

The checks take a database URL, so ``test_postgres.py`` runs them on PostgreSQL too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.exc import NoResultFound
from sqlmodel import Session, col, select

from metwatch.models import SourceSpec, SourceState
from metwatch.store import SqlStore, open_store
from metwatch.store.sql import CLAIM_LEASE, aware
from metwatch.store.tables import SourceRow

NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)


def _spec(source_id: str) -> SourceSpec:
    return SourceSpec(source_id, source_id.upper(), "feed", f"http://127.0.0.1:9/{source_id}", 300)


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements sent to the database inside the block (an executemany is one)."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def rows(store: SqlStore, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Every column of the sources whose id starts with ``prefix``, keyed by the rest."""
    with Session(store.engine) as s:
        found = s.exec(select(SourceRow).where(col(SourceRow.id).startswith(prefix)))
        return {
            r.id.removeprefix(prefix): r.model_dump(exclude={"id", "name", "url"}) for r in found
        }


def check_claims_in_due_order(url: str, statements_per_claim: int) -> list[str]:
    """Claims come most overdue first, skip disabled and future sources, and lease.

    Returns the SQL of the first claim, for dialect-specific checks.
    """
    store = open_store(url)
    ids = [f"s{n:02}" for n in range(12)]
    # Due times out of id order; s10 and s11 are not due yet.
    due = {sid: NOW - timedelta(minutes=(n * 5) % 12) for n, sid in enumerate(ids)}
    due |= {"s10": NOW + timedelta(minutes=1), "s11": NOW + timedelta(hours=1)}
    store.sync_sources([_spec(sid) for sid in ids], lambda spec: due[spec.id])
    store.sync_sources([_spec(sid) for sid in ids if sid != "s03"], lambda spec: due[spec.id])
    store.record_failure("s05", now=NOW, next_poll=due["s05"], error="HTTP 500", threshold=3)
    store.record_success(
        "s07", now=NOW, next_poll=due["s07"], etag='"e7"', last_modified="lm7", new_items=2
    )
    expected = sorted(
        (sid for sid in ids if sid not in ("s03", "s10", "s11")), key=due.__getitem__
    )

    with statements(store.engine) as sent:
        first = store.claim_due_sources(NOW, limit=4)
    assert len(sent) == statements_per_claim  # however many sources it claims
    rest = store.claim_due_sources(NOW, limit=100)
    assert [s.id for s in first + rest] == expected
    assert store.claim_due_sources(NOW) == []  # all leased

    states = {s.id: s for s in first + rest}
    assert states["s05"] == SourceState(
        "s05", "http://127.0.0.1:9/s05", None, None, 1, due_at=due["s05"]
    )
    assert states["s07"] == SourceState(
        "s07", "http://127.0.0.1:9/s07", '"e7"', "lm7", 0, last_success_at=NOW, due_at=due["s07"]
    )
    leased = {
        sid for sid, r in rows(store).items() if aware(r["next_poll_at"]) == NOW + CLAIM_LEASE
    }
    assert leased == set(expected)
    store.engine.dispose()
    return sent


def _prepare(store: SqlStore, *prefixes: str) -> list[list[tuple[str, datetime]]]:
    """Per prefix, five sources in different states and a tick's 304s for four of them."""
    ids = [f"{prefix}{n}" for prefix in prefixes for n in range(5)]
    store.sync_sources([_spec(sid) for sid in ids], lambda spec: NOW - timedelta(minutes=5))
    earlier = NOW - timedelta(minutes=30)
    for prefix in prefixes:
        store.record_success(
            f"{prefix}1", now=earlier, next_poll=NOW, etag='"e1"', last_modified="lm1", new_items=3
        )
        for _ in range(2):  # failing: reported as recovered
            store.record_failure(
                f"{prefix}2", now=earlier, next_poll=NOW, error="HTTP 503", threshold=2
            )
        store.record_failure(
            f"{prefix}3", now=earlier, next_poll=NOW, error="timeout", threshold=2
        )
    # Source 2 answers twice (two ticks' worth): the later next_poll wins, one recovery.
    return [
        [
            (f"{prefix}{n}", NOW + timedelta(minutes=m))
            for n, m in ((0, 5), (1, 6), (2, 7), (3, 8), (2, 9))
        ]
        for prefix in prefixes
    ]


def check_batch_equals_one_by_one(url: str) -> None:
    """``record_not_modified`` leaves the rows ``record_success(modified=False)`` would."""
    store = open_store(url)
    one_by_one, batch = _prepare(store, "a-", "b-")
    assert rows(store, "a-") == rows(store, "b-")

    recovered = [
        sid
        for sid, at in one_by_one
        if store.record_success(
            sid, now=NOW, next_poll=at, etag=None, last_modified=None, new_items=0, modified=False
        )
    ]
    with statements(store.engine) as sent:
        batch_recovered = store.record_not_modified(batch, NOW)

    assert (recovered, batch_recovered) == (["a-2"], ["b-2"])
    assert rows(store, "a-") == rows(store, "b-")
    assert aware(rows(store, "b-")["2"]["next_poll_at"]) == NOW + timedelta(minutes=9)
    assert rows(store, "b-")["1"]["etag"] == '"e1"'  # a 304 keeps the validators
    assert len(sent) == 2  # one SELECT of the failing, one executemany UPDATE
    assert store.record_not_modified(batch, NOW) == []  # recovered once only
    store.engine.dispose()


def check_unknown_source_records_nothing(url: str) -> None:
    store = open_store(url)
    (polls,) = _prepare(store, "c-")
    before = rows(store)
    with pytest.raises(NoResultFound, match="no such source: c-9"):
        store.record_not_modified([*polls, ("c-9", NOW)], NOW)
    assert rows(store) == before
    with statements(store.engine) as sent:
        assert store.record_not_modified([], NOW) == []
    assert sent == []
    store.engine.dispose()


def test_claims_in_due_order(db_url: str) -> None:
    # SQLite's RETURNING cannot read the old next_poll_at: one read for the order.
    sent = check_claims_in_due_order(db_url, statements_per_claim=2)
    assert "FOR UPDATE" not in " ".join(sent)


def test_batch_equals_one_by_one(db_url: str) -> None:
    check_batch_equals_one_by_one(db_url)


def test_unknown_source_records_nothing(db_url: str) -> None:
    check_unknown_source_records_nothing(db_url)
