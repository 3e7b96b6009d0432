"""Worker processes for the pure, CPU-heavy stages: parsing and normalising
feeds, classifying new items, fingerprints and summaries (``metwatch.offload``).

Two reasons. One process holds one core (the GIL): the fetches, the store and
clustering need the main process's, and the pure stages can run on another.
And a body that kills its parser (out of memory, a crash in C code) kills a
worker, not metwatch: that call raises ``WorkerDied`` and the next one gets a
fresh worker.

What runs here must be a module-level function of picklable arguments (it is
sent to the worker by name). ``call`` is for the event loop (the pipeline);
``run`` blocks, for synchronous callers. ``in_thread`` and ``inline`` are the
same contracts without processes.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, Protocol, TypeVar

from metwatch.errors import MetwatchError

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: A worker is replaced after this many calls, so whatever a library keeps
#: between calls (feedparser, pysbd) cannot grow for the life of the service.
CALLS_PER_WORKER = 5000
#: How often a worker checks that metwatch is still its parent.
PARENT_CHECK_SECONDS = 1.0


class WorkerDied(MetwatchError):
    """The worker process running a call died (killed, out of memory, crashed)."""


class Runner(Protocol):
    """Runs ``fn(*args)`` somewhere and returns its result (or raises its error)."""

    def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


def inline(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """A ``Runner`` without processes: the call runs here."""
    return fn(*args, **kwargs)


class Offload(Protocol):
    """Awaits ``fn(*args)`` run off the event loop (a thread or a worker process)."""

    async def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


async def in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """An ``Offload`` without processes: the call runs in one of this process's threads."""
    return await asyncio.to_thread(fn, *args, **kwargs)


class WorkerPool:
    """``processes`` worker processes, started on the first call."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("a worker pool needs at least one process")
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        #: One process for calls run again after their pool broke, one at a time.
        self._quarantine: ProcessPoolExecutor | None = None
        self._alone_lock = threading.Lock()

    def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args)`` in a worker; its exceptions come back as they were raised.

        Raises:
            WorkerDied: the call killed its worker (which has been replaced).
        """
        pool = self._running_pool()
        try:
            return pool.submit(fn, *args, **kwargs).result()
        except BrokenProcessPool:
            self._replace(pool)
        return self._alone(fn, *args, **kwargs)

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``run`` for the event loop: awaits the worker's answer without holding a
        thread of this process while it works.

        Raises:
            WorkerDied: the call killed its worker (which has been replaced).
        """
        pool = self._running_pool()
        try:
            return await asyncio.wrap_future(pool.submit(fn, *args, **kwargs))
        except BrokenProcessPool:
            self._replace(pool)
        return await asyncio.to_thread(self._alone, fn, *args, **kwargs)

    def _alone(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """A call whose pool broke, run again in a process of its own, one such call
        at a time.

        When one worker dies, every call in flight in its pool fails with it. Run
        alone, a call that merely stood beside the one that killed the worker
        succeeds, and the one that killed it dies again: only it fails.
        """
        with self._alone_lock:
            pool = self._quarantine
            if pool is None:
                pool = self._quarantine = self._new_pool(1)
            try:
                return pool.submit(fn, *args, **kwargs).result()
            except BrokenProcessPool as e:
                self._quarantine = None
                pool.shutdown(wait=False, cancel_futures=True)
                name = getattr(fn, "__name__", repr(fn))
                log.warning("a worker process died running %s, twice: that call fails", name)
                raise WorkerDied(f"the worker process died running {name}") from e

    def pids(self) -> list[int]:
        """The worker processes' ids (none before the first call)."""
        with self._lock:
            pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return list(processes)

    def close(self) -> None:
        with self._lock:
            pools, self._pool, self._quarantine = (self._pool, self._quarantine), None, None
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def _running_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = self._new_pool(self.processes)
            return self._pool

    def _new_pool(self, processes: int) -> ProcessPoolExecutor:
        # "spawn", not fork: the service has threads (asyncio's, the store's) whose
        # locks a forked child would inherit mid-use.
        return ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            max_tasks_per_child=CALLS_PER_WORKER,
            initializer=exit_with_parent,
            initargs=(os.getpid(),),
        )

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Drop a broken pool (once, however many calls saw it break)."""
        with self._lock:
            if self._pool is not broken:
                return
            self._pool = None
        log.warning("a worker process died; its calls in flight run again, one at a time")
        broken.shutdown(wait=False, cancel_futures=True)


def exit_with_parent(parent: int) -> None:
    """Runs first in each worker: exit once metwatch is gone.

    A worker holds both ends of its task queue, so when metwatch is killed
    (SIGKILL, the OOM killer) it would wait for work forever, outside any
    container that would have taken it down too.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
