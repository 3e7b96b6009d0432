"""SqlStore: the one store implementation, over SQLite or PostgreSQL.

Converts tables to ``metwatch.models`` objects at its boundary and keeps each
operation in one transaction. Its methods live by subject:

* ``store.sources``: the poll schedule and source health;
* ``store.items``: what is new in a feed, storing and reading items;
* ``store.stories``: matches, stories, and the outbox rows they create;
* ``store.outbox``: subscribers, follows, and draining the outbox;
* ``store.base``: sessions, error wrapping, upserts, the meta table.
"""

from __future__ import annotations

from metwatch.store.base import aware
from metwatch.store.outbox import OutboxStore
from metwatch.store.sources import CLAIM_LEASE, SourceStore
from metwatch.store.stories import StoryStore

__all__ = ["CLAIM_LEASE", "SqlStore", "aware"]


class SqlStore(SourceStore, StoryStore, OutboxStore):
    """Persistent state: sources, items, matches, stories, subscribers, outbox."""
