"""feedparser in worker processes.

Two reasons. Parsing is most of the CPU a new feed costs (about 16 ms per 50 KB
feed), and in a worker it runs on another core instead of holding the GIL the
fetches and the store need. And a body that kills its parser (out of memory, a
crash in C code) kills a worker, not metwatch: that poll fails with a clear
error and the next parse gets a fresh worker.

``ParsePool.parse`` blocks; call it from a thread (the pipeline does).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from metwatch.errors import ParseError
from metwatch.models import ParsedFeed
from watchers.parse import parse_feed

log = logging.getLogger(__name__)

#: A worker is replaced after this many feeds, so whatever feedparser keeps
#: between calls cannot grow for the life of the service.
PARSES_PER_WORKER = 2000

Parse = Callable[[bytes, str, str], ParsedFeed]


class ParsePool:
    """``parse_feed`` run by ``processes`` worker processes, started on first use."""

    def __init__(self, processes: int, *, parse: Parse = parse_feed) -> None:
        if processes < 1:
            raise ValueError("a parse pool needs at least one process")
        self.processes = processes
        #: Must be a module-level function: it is sent to the workers by name.
        self._parse = parse
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def parse(self, content: bytes, url: str, content_type: str = "") -> ParsedFeed:
        """Parse in a worker; raises ``ParseError`` as ``parse_feed`` does, and when
        the worker dies on this body."""
        pool = self._running_pool()
        try:
            return pool.submit(self._parse, content, url, content_type).result()
        except BrokenProcessPool as e:
            self._replace(pool)
            log.warning("a feed parser process died reading %s; it has been replaced", url)
            raise ParseError(
                "the feed parser process died reading this body (out of memory or "
                "crashed); the feed is probably malformed or hostile",
                url=url,
            ) from e

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _running_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # "spawn", not fork: the service has threads (asyncio's, the
                # store's) whose locks a forked child would inherit mid-use.
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    max_tasks_per_child=PARSES_PER_WORKER,
                )
            return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Drop a broken pool (once, however many parses saw it break)."""
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)
