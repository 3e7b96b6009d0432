"""Worker processes for the pure, CPU-heavy stages: parsing and normalising
feeds, classifying new items, fingerprints and summaries (``metwatch.offload``).

Three reasons. One process holds one core (the GIL): the fetches, the store
and clustering need the main process's, and the pure stages can run on another.
A body that kills its parser (out of memory, a crash in C code) kills a worker,
not metwatch: that call raises ``WorkerDied`` and the worker is replaced. And a
call is bounded in time: one that outruns ``call_timeout`` (a giant or hostile
body on feedparser's slow path) has its worker stopped and raises
``WorkerTimedOut``, so it cannot hold a worker, and every source's parsing
queued behind it, for as long as it likes.

The pool is pebble's ``ProcessPool``, made for this: a worker runs one call at
a time, so a call that kills or outruns its worker fails alone, and the calls
beside it run on.

What runs here must be a module-level function of picklable arguments (it is
sent to the worker by name). ``call`` is for the event loop (the pipeline);
``run`` blocks, for synchronous callers. ``in_thread`` and ``inline`` are the
same contracts without processes.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import NoReturn, ParamSpec, Protocol, TypeVar

from pebble import ProcessExpired, ProcessPool

from metwatch.errors import MetwatchError

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: A worker is replaced after this many calls, so whatever a library keeps
#: between calls (feedparser, pysbd) cannot grow for the life of the service.
CALLS_PER_WORKER = 5000
#: How often a worker checks that metwatch is still its parent.
PARENT_CHECK_SECONDS = 1.0
#: The longest a call may run (``METWATCH_WORKER_CALL_TIMEOUT``). feedparser
#: reads a malformed 10 MB feed (the response cap) in about 9 s here.
CALL_TIMEOUT_SECONDS = 60.0


class WorkerDied(MetwatchError):
    """The worker process running a call died (killed, out of memory, crashed)."""


class WorkerTimedOut(WorkerDied):
    """A call outran the pool's time limit; its worker was stopped and replaced.

    A kind of ``WorkerDied``: whoever handles a worker lost to its call handles
    this too, and can say why (``seconds``)."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


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
    """``processes`` worker processes, started on the first call; each call may
    run for ``call_timeout`` seconds (None: without limit). Each worker imports
    the modules ``preload`` names when it starts, so their import does not count
    against the first call's time (nor delay it)."""

    def __init__(
        self, processes: int, *, call_timeout: float | None = CALL_TIMEOUT_SECONDS,
        preload: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        if processes < 1:
            raise ValueError("a worker pool needs at least one process")
        if call_timeout is not None and call_timeout <= 0:
            raise ValueError("a worker call's time limit must be positive")
        self.processes = processes
        self.call_timeout = call_timeout
        self.preload = preload
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()

    def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args)`` in a worker; its exceptions come back as they were raised.

        Raises:
            WorkerDied: the call killed its worker (which has been replaced).
            WorkerTimedOut: the call outran ``call_timeout`` (its worker too).
        """
        future = self._schedule(fn, args, kwargs)
        try:
            return future.result()
        except (ProcessExpired, BrokenProcessPool, FutureTimeout) as e:
            self._lost(fn, e)

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``run`` for the event loop: awaits the worker's answer without holding a
        thread of this process while it works. Cancelling it stops the call (and
        its worker, which is replaced): a cancelled poll leaves no work behind.

        Raises:
            WorkerDied: the call killed its worker (which has been replaced).
            WorkerTimedOut: the call outran ``call_timeout`` (its worker too).
        """
        future = self._schedule(fn, args, kwargs)
        try:
            return await asyncio.wrap_future(future)
        except (ProcessExpired, BrokenProcessPool, FutureTimeout) as e:
            self._lost(fn, e)

    def pids(self) -> list[int]:
        """The worker processes' ids (none before the first call)."""
        with self._lock:
            pool = self._pool
        manager = getattr(pool, "_pool_manager", None)
        return list(getattr(getattr(manager, "worker_manager", None), "workers", None) or {})

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            # Calls in flight and queued are dropped, their workers stopped.
            pool.stop()  # type: ignore[no-untyped-call]
            pool.join()

    def _schedule(
        self, fn: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]
    ) -> Future[T]:
        with self._lock:
            # pebble gives up on a pool whose idle worker died (no call to blame):
            # a new pool takes its place.
            if self._pool is None or not self._pool.active:
                if self._pool is not None:
                    log.warning("the worker pool broke; starting a new one")
                    self._pool.stop()  # type: ignore[no-untyped-call]
                self._pool = self._new_pool()
            return self._pool.schedule(fn, args, kwargs, timeout=self.call_timeout)

    def _new_pool(self) -> ProcessPool:
        # "spawn", not fork: the service has threads (asyncio's, the store's) whose
        # locks a forked child would inherit mid-use.
        return ProcessPool(
            self.processes,
            max_tasks=CALLS_PER_WORKER,
            initializer=start_worker,
            initargs=(os.getpid(), self.preload),
            context=multiprocessing.get_context("spawn"),
        )

    def _lost(self, fn: Callable[..., object], error: Exception) -> NoReturn:
        """Raise the error of a call whose worker it killed, or outran its time in
        (or the call's own ``TimeoutError``, as it raised it)."""
        name = getattr(fn, "__name__", repr(fn))
        if isinstance(error, FutureTimeout):
            if not _timed_out(error) or self.call_timeout is None:
                raise error
            seconds = self.call_timeout
            log.warning("%s ran longer than %g s in a worker process: stopped", name, seconds)
            raise WorkerTimedOut(
                f"{name} ran longer than {seconds:g} s in a worker", seconds
            ) from error
        log.warning("a worker process died running %s: that call fails", name)
        raise WorkerDied(f"the worker process died running {name}") from error


def _timed_out(error: BaseException) -> bool:
    """Whether pebble stopped the call for its time (not a TimeoutError of its own:
    in Python 3.11 both are the built-in ``TimeoutError``)."""
    return isinstance(error, FutureTimeout) and error.args[:1] == ("Task timeout",)


def start_worker(parent: int, preload: tuple[str, ...]) -> None:
    """Runs first in each worker: ``exit_with_parent``, then the imports."""
    exit_with_parent(parent)
    for module in preload:
        importlib.import_module(module)


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
