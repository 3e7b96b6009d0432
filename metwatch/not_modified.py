"""A tick's polls answered 304 Not Modified, recorded together.

One write for many sources costs a thirtieth of a transaction per source (the
warm pass, where every feed answers 304); written within ``NOT_MODIFIED_WAIT``
of the first, so a slow poll in the same tick keeps no other source claimed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime

from metwatch.errors import StoreError
from metwatch.models import SourceSpec
from metwatch.ports import Clock
from metwatch.store import SqlStore

log = logging.getLogger(__name__)

#: Seconds a tick's 304s wait to be written together.
NOT_MODIFIED_WAIT = 1.0


class NotModifiedPolls:
    """A tick's 304s, recorded together: a thirtieth of a transaction per source.

    Written at most ``NOT_MODIFIED_WAIT`` seconds after the first of them comes,
    not when the tick's last poll ends: a slow site in the same tick must not keep
    the sources that answered claimed (and unpolled) for as long as it takes.
    """

    def __init__(self, store: SqlStore, specs: Mapping[str, SourceSpec], clock: Clock) -> None:
        self.store = store
        self.specs = specs
        self.clock = clock
        self.pending: list[tuple[str, datetime]] = []
        #: Sources that were failing and recovered with a 304.
        self.recovered: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, source_id: str, next_poll: datetime) -> None:
        self.pending.append((source_id, next_poll))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(NOT_MODIFIED_WAIT, self._due)

    def _due(self) -> None:
        try:
            self.flush()
        except StoreError:  # the database: the tick's end writes them, or says so
            log.exception("could not record %d polls answered 304", len(self.pending))

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        polls, self.pending = self.pending, []
        if polls:
            try:
                self.recovered += self.store.record_not_modified(polls, self.clock(), self.specs)
            except BaseException:
                self.pending = polls + self.pending  # not written: the next flush tries
                raise
