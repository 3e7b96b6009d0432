"""Polling benchmark: metwatch's real Pipeline against 1,000 local feeds.

The feed site
-------------
A separate **process** (``multiprocessing``, spawn), so that its CPU is not
counted in metwatch's ``time.process_time``, runs the test suite's ``FeedServer``
with ``--feeds`` RSS documents of 50 items. Feed ``i`` is
``tests.support.feeds.realistic_feed(50, seed=i)`` (same channel, same items)
with its GUIDs and links rewritten to be unique to the feed; bodies are 45-56 KB.
Every feed has an ETag and a Last-Modified, so conditional GET answers 304.

metwatch
--------
As in ``metwatch poll --once``: a real ``Pipeline`` over a real SQLite store
(``open_store`` on a file in a temporary folder, migrations applied),
``watchers.fetch.Fetcher`` over ``build_client`` (max_concurrent 32, per_host 32,
timeout 20 s), the default watch rules with their sources replaced by the local
feeds (interval 60 s), and one subscribed chat, as the console subscriber of
``metwatch run`` without a token, so flagged items also write stories and
outbox rows. Full text for short items (``METWATCH_FULLTEXT_MIN_CHARS``, 400 in
``metwatch run``) is off: the items' links are not served here, and with it on
every short new item would cost one more fetch. Logging is left unconfigured
(WARNING). Each timed pass is one ``await pipeline.tick(everything=True)``;
setup (imports, migrations, feed generation) is not timed.

1. cold: an empty database, every feed is new. Wall time, items/s, CPU, and the
   peak RSS of the process (``ru_maxrss``, read after the cold passes, which run
   first). Every repeat starts from a fresh database. A cold pass is cancelled
   at ``--cold-budget`` seconds (default: the 60 s target, scaled by feeds/1000):
   past the target it is a MISS whatever happens, and an unbounded pass over
   1,000 feeds takes tens of minutes today. A cut pass reports what it stored in
   the time it had (items/s) and a linear extrapolation of the full pass; once
   the first repeat is cut, the others get half the budget (throughput only).
2. catch-up (not timed): the feeds a cut cold pass did not reach get the rows a
   finished pass would have written (their items, normalised by
   ``watchers.normalise.normalise`` from the same data the site serves, and the
   site's ETag / Last-Modified); the bench checks that its rows equal the
   Pipeline's for feeds the Pipeline did poll. Matches and stories are not
   written for those feeds.
3. warm: every feed answers 304 Not Modified. Wall time and CPU seconds of the
   metwatch process.
4. change: 10% of the feeds get one new item at the top (the oldest drops off)
   with a new ETag and Last-Modified. Wall time, new items (must be exactly 10%
   of the feeds) and flagged items. Each repeat changes a different sample.
5. naive baseline: sequential ``httpx.get`` + ``feedparser.parse`` (defaults)
   per feed, no conditional GET, nothing stored, over ``--baseline-feeds`` feeds
   (default 50: its cost is linear in feeds), run right after each cold pass.
   Items/s, and the ratio of cold metwatch throughput to it, pass by pass (a
   shared machine's slow minute slows both of a pair), and its median.
6. with a network in the way (``--network-latency``, default 200 ms): a second
   site answers every request after that delay, as remote servers do; cold
   passes and the baseline again, pair by pair. A table gives cold wall,
   throughputs and the ratio at each latency, loopback first.

Medians over ``--repeats`` are printed next to the targets with PASS/MISS. The
machine's load average is printed too: wall times on a shared machine vary.

Off by default: ``--profile`` times each step of a cold and then a warm pass over
100 feeds (time.process_time around the steps, no profiler), then runs both again
under cProfile and prints the time per stage and the top functions;
``--compare-parsers N`` times feedparser against fastfeedparser (when installed)
on N feeds of the corpus and checks that GUIDs, links, titles, dates, summaries
and authors agree, and that the normalised Items are the same; then times the
proven subset's check (ms per feed, feeds accepted) and a new source's first
body read by feedparser with the run-time proof against the fast path with the
check; ``--latency MS`` makes the site wait before every answer (as remote
servers do); ``--tracemalloc`` adds a
cold pass under tracemalloc.

Usage::

    .venv/bin/python bench/poll.py                      # 1,000 feeds, 3 repeats
    .venv/bin/python bench/poll.py --quick              # 100 feeds, 1 repeat
    .venv/bin/python bench/poll.py --quick --profile --compare-parsers 200
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import contextlib
import cProfile
import email.utils
import gc
import hashlib
import importlib
import io
import multiprocessing
import os
import pstats
import random
import resource
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
import types
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import feedparser  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import bindparam, insert, text, update  # noqa: E402

from classifiers.rules import RuleSet, load_rules  # noqa: E402
from metwatch.errors import SourceError  # noqa: E402
from metwatch.models import PollOutcome, RawEntry, SourceSpec  # noqa: E402
from metwatch.pipeline import Pipeline, PollResult  # noqa: E402
from metwatch.store import SqlStore, open_store  # noqa: E402
from metwatch.store.tables import ItemRow, SourceRow  # noqa: E402
from metwatch.workers import WorkerPool, in_thread  # noqa: E402
from tests.support.feed_server import FeedServer  # noqa: E402
from tests.support.feeds import FeedItem, realistic_feed, realistic_item, rss  # noqa: E402
from watchers.fastparse import _well_formed_root, read_and_prove, read_unproven  # noqa: E402
from watchers.feed_subset import in_subset  # noqa: E402
from watchers.fetch import Fetcher, build_client  # noqa: E402
from watchers.normalise import normalise  # noqa: E402
from watchers.parse import parse_feed  # noqa: E402

ITEMS_PER_FEED = 50
MAX_CONCURRENT = 32
PER_HOST = 32
#: Worker processes (parsing, fingerprints, summaries), as METWATCH_WORKER_PROCESSES.
WORKER_PROCESSES = 1
TIMEOUT = 20.0
MAX_BYTES = 10 * 1024 * 1024  # METWATCH_MAX_RESPONSE_BYTES default
INTERVAL = 60
PROFILE_FEEDS = 100
#: Pipeline.tick(everything=True) claims at most this many sources per call.
TICK_LIMIT = 1000
_ORIGIN = "https://news.example.com/"
_LAST_MODIFIED = datetime(2024, 6, 3, 9, 30, tzinfo=UTC)

# Targets from the issue, for 1,000 feeds.
COLD_RATIO_TARGET = 10.0
COLD_WALL_TARGET = 60.0
WARM_WALL_TARGET = 5.0
WARM_CPU_TARGET = 2.0
RSS_TARGET_MB = 250.0

Say = Callable[[str], None]


# -- the corpus ---------------------------------------------------------------------------


def feed_path(feed: int) -> str:
    return f"/feeds/{feed:04d}.xml"


def source_id(feed: int) -> str:
    return f"bench-{feed:04d}"


def _distinct(feed: int, item: FeedItem) -> FeedItem:
    """The item with a GUID and a link that no other feed has."""
    link = (item.link or _ORIGIN).replace(_ORIGIN, f"{_ORIGIN}f{feed:04d}/", 1)
    return replace(item, link=link, guid=f"f{feed:04d}-{item.guid}")


def base_items(feed: int) -> list[FeedItem]:
    """Feed ``feed``'s items: those of ``realistic_feed(50, seed=feed)``, made distinct."""
    rng = random.Random(feed)
    return [_distinct(feed, realistic_item(i, rng)) for i in range(ITEMS_PER_FEED)]


def new_item(feed: int, version: int) -> FeedItem:
    """The item that change number ``version`` puts at the top of feed ``feed``."""
    item = realistic_item(0, random.Random(f"update-{feed}-{version}"))
    return replace(
        item,
        guid=f"f{feed:04d}-update-{version}",
        link=f"{_ORIGIN}f{feed:04d}/update/{version}",
        published=_LAST_MODIFIED + timedelta(minutes=version),
    )


def render(items: Sequence[FeedItem]) -> bytes:
    """The RSS document, with the channel ``realistic_feed`` writes."""
    doc = rss(
        items, title="Example News – London", description="Latest stories from Example News",
        ttl=15,
    )  # fmt: skip
    return doc.encode()


# -- the feed site (its own process) ------------------------------------------------------


@dataclass
class _Site:
    server: FeedServer
    delay: float
    items: dict[int, list[FeedItem]] = field(default_factory=dict)
    validators: dict[int, tuple[str, str]] = field(default_factory=dict)

    def publish(self, feed: int, items: list[FeedItem], version: int) -> int:
        body = render(items)
        etag = f'"{feed}-{version}-{hashlib.sha256(body).hexdigest()[:16]}"'
        modified = email.utils.format_datetime(
            _LAST_MODIFIED + timedelta(minutes=version), usegmt=True
        )
        self.server.serve(
            feed_path(feed), body, etag=etag, last_modified=modified, delay=self.delay
        )
        self.items[feed], self.validators[feed] = items, (etag, modified)
        return len(body)


def serve_feeds(n_feeds: int, delay: float, conn: Connection) -> None:
    """Child process: serve the feeds and obey the parent until it says "stop"."""
    with FeedServer() as server:
        site = _Site(server, delay)
        sizes = [site.publish(feed, base_items(feed), 0) for feed in range(n_feeds)]
        conn.send((server.base_url, sizes))
        while True:
            command, *args = conn.recv()
            if command == "change":
                feeds, version = args
                for feed in feeds:
                    site.publish(feed, [new_item(feed, version), *site.items[feed][:-1]], version)
                conn.send(len(feeds))
            elif command == "validators":
                conn.send(site.validators)
            elif command == "items":
                conn.send({feed: site.items[feed] for feed in args[0]})
            elif command == "cpu":
                conn.send(time.process_time())
            elif command == "stop":
                conn.send(time.process_time())
                return


class FeedSite:
    """The parent's handle on the feed-site process."""

    def __init__(self, n_feeds: int, delay: float = 0.0) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=serve_feeds, args=(n_feeds, delay, child), name="feed-site", daemon=True
        )
        self._process.start()
        received: tuple[str, list[int]] = self._conn.recv()
        self.base_url, self.sizes = received
        self.n_feeds = n_feeds

    def url(self, feed: int) -> str:
        return self.base_url + feed_path(feed)

    def change(self, feeds: Sequence[int], version: int) -> None:
        self._conn.send(("change", list(feeds), version))
        self._conn.recv()

    def validators(self) -> dict[int, tuple[str, str]]:
        """Each feed's current (ETag, Last-Modified) header values."""
        self._conn.send(("validators",))
        result: dict[int, tuple[str, str]] = self._conn.recv()
        return result

    def items(self, feeds: Sequence[int]) -> dict[int, list[FeedItem]]:
        """The items each of ``feeds`` serves now."""
        self._conn.send(("items", list(feeds)))
        result: dict[int, list[FeedItem]] = self._conn.recv()
        return result

    def cpu(self) -> float:
        """CPU seconds the site process has used so far."""
        self._conn.send(("cpu",))
        return float(self._conn.recv())

    def stop(self) -> float:
        """Stop the site; returns its CPU seconds."""
        self._conn.send(("stop",))
        cpu = float(self._conn.recv())
        self._process.join(timeout=10)
        return cpu


# -- metwatch -----------------------------------------------------------------------------


def write_rules(folder: Path, site: FeedSite, n_feeds: int) -> Path:
    """The default watch rules with the sources replaced by the local feeds.

    Done as ``tests/rules_for_tests.py`` does it (that module imports pytest).
    """
    text_ = (ROOT / "watch-rules.yaml").read_text(encoding="utf-8")
    lines = [text_[: text_.index("\nsources:")], "", "sources:"]
    for feed in range(n_feeds):
        lines += [
            f"  - id: {source_id(feed)}",
            f'    name: "Example News {feed}"',
            f'    url: "{site.url(feed)}"',
            f"    interval: {INTERVAL}",
        ]
    path = folder / f"watch-rules-{n_feeds}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Metwatch:
    """One metwatch instance on its own SQLite file."""

    store: SqlStore
    client: httpx.AsyncClient
    pipeline: Pipeline
    workers: WorkerPool | None = None

    @classmethod
    def open(cls, folder: Path, rules: RuleSet, timeout: float = TIMEOUT) -> Metwatch:
        store = open_store(f"sqlite:///{folder / 'metwatch.db'}")
        store.subscribe(0, [t.id for t in rules.topics], utc_now())
        client = build_client(timeout=timeout, user_agent="metwatch-bench/0")
        fetcher = Fetcher(
            client, max_bytes=MAX_BYTES, max_concurrent=MAX_CONCURRENT, per_host=PER_HOST
        )
        # Full text for short items stays off: their links (news.example.com) are not
        # served here, and nothing may leave loopback.
        pool = (
            WorkerPool(WORKER_PROCESSES, preload=("metwatch.offload",))
            if WORKER_PROCESSES
            else None
        )
        pipeline = Pipeline(
            store, fetcher, rules, clock=utc_now, fulltext_min_chars=0,
            offload=pool.call if pool is not None else in_thread,
        )  # fmt: skip
        pipeline.sync_sources()
        return cls(store, client, pipeline, pool)

    def worker_pids(self) -> list[int]:
        """The worker processes' process ids (they start on the first parse)."""
        return self.workers.pids() if self.workers is not None else []

    def cpu(self) -> float:
        """CPU seconds of this process and its worker processes (the feed site excluded)."""
        return time.process_time() + self.worker_cpu()

    def worker_cpu(self) -> float:
        return sum(_proc_cpu(pid) for pid in self.worker_pids())

    def worker_peak_rss(self) -> float:
        return sum(_proc_peak_rss_mb(pid) for pid in self.worker_pids())

    def scalar(self, sql: str) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())

    async def close(self) -> None:
        await self.client.aclose()
        if self.workers is not None:
            self.workers.close()
        self.store.engine.dispose()


@contextlib.contextmanager
def _light_main() -> Iterator[None]:
    """Start processes as the ``metwatch`` console script would.

    A "spawn" worker re-imports the parent's ``__main__``: this script, with
    SQLAlchemy, the classifiers and the test corpus (~70 MB more). The service's
    ``__main__`` is the console script, which imports only ``metwatch.cli``
    (a worker then peaks at ~29 MB). So workers start under a bare ``__main__``.
    """
    real = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = real


def _proc_cpu(pid: int) -> float:
    """utime + stime of a live process, from /proc (children are not in process_time)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_peak_rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1]) * 1024 / 1e6


@dataclass
class Pass:
    wall: float
    cpu: float
    #: Sources polled (for a cut cold pass: sources that got as far as storing).
    polled: int
    not_modified: int
    new_items: int
    flagged: int
    errors: list[str]
    #: None when the tick finished; else the budget at which it was cancelled.
    budget: float | None = None
    #: CPU seconds the feed site used meanwhile (another process; not in ``cpu``).
    site_cpu: float | None = None
    #: This process's peak RSS so far, in MB, read after the pass.
    peak_rss: float = 0.0
    #: CPU seconds of the worker processes (parsing, fingerprints, summaries): in ``cpu``.
    worker_cpu: float = 0.0

    def line(self) -> str:
        text_ = (
            f"{self.wall:6.2f} s wall, {self.cpu:6.2f} s CPU ({self.worker_cpu:.2f} in workers), "
            f"{self.polled} polled, "
            f"{self.not_modified} not modified, {self.new_items} new, {self.flagged} flagged"
        )
        if self.site_cpu is not None:
            text_ += f" [site {self.site_cpu:.2f} s CPU; peak RSS so far {self.peak_rss:.0f} MB]"
        if self.budget is not None:
            text_ += (
                f" (CUT: cancelled at the {self.budget:g} s budget, which took effect when"
                f" the event loop got back from ingesting, at {self.wall:.1f} s)"
            )
        if self.errors:
            timeouts = sum("timed out" in e for e in self.errors)
            text_ += f"; {len(self.errors)} source errors ({timeouts} timeouts)"
        return text_


def _from_results(results: Sequence[PollResult], wall: float, cpu: float) -> Pass:
    outcomes = [r.value for r in results if isinstance(r.value, PollOutcome)]
    return Pass(
        wall=wall,
        cpu=cpu,
        polled=len(results),
        not_modified=sum(1 for r in results if r.value is None),
        new_items=sum(len(o.new_items) for o in outcomes),
        flagged=sum(len(o.flagged) for o in outcomes),
        errors=[f"{r.source_id}: {r.value}" for r in results if isinstance(r.value, SourceError)],
    )


async def timed_tick(mw: Metwatch) -> Pass:
    gc.collect()
    cpu0, wall0, workers0 = mw.cpu(), time.perf_counter(), mw.worker_cpu()
    results = await mw.pipeline.tick(everything=True)
    p = _from_results(results, time.perf_counter() - wall0, mw.cpu() - cpu0)
    p.worker_cpu = mw.worker_cpu() - workers0
    return p


async def cold_pass(mw: Metwatch, budget: float) -> Pass:
    """A tick on an empty database, cancelled at ``budget`` seconds.

    Cancelling is safe: with full text off, a poll does not suspend between storing
    its items and recording its success, so a feed is fully stored or not at all (and
    ``catch_up`` skips items already stored in any case).
    """
    gc.collect()
    # Start the worker processes first: a restarted service starts them once, not per pass.
    if mw.workers is not None:
        with _light_main():
            mw.workers.run(parse_feed, realistic_feed(1, seed=0).encode(), "http://warm.up/", "")
    cpu0, wall0, workers0 = mw.cpu(), time.perf_counter(), mw.worker_cpu()
    try:
        results = await asyncio.wait_for(mw.pipeline.tick(everything=True), budget)
    except TimeoutError:
        results = None
    wall, cpu, workers = time.perf_counter() - wall0, mw.cpu() - cpu0, mw.worker_cpu() - workers0
    if results is not None:
        p = _from_results(results, wall, cpu)
        p.worker_cpu = workers
        return p
    with mw.store.engine.connect() as conn:
        errors = [
            f"{sid}: {error}"
            for sid, error in conn.execute(
                text("SELECT id, last_error FROM sources WHERE error_count > 0")
            )
        ]
    return Pass(
        wall=wall,
        cpu=cpu,
        polled=mw.scalar("SELECT count(*) FROM sources WHERE etag IS NOT NULL"),
        not_modified=0,
        new_items=mw.scalar("SELECT count(*) FROM items"),
        flagged=mw.scalar("SELECT count(DISTINCT item_id) FROM matches"),
        errors=errors,
        budget=budget,
        worker_cpu=workers,
    )


def rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def _raw(item: FeedItem) -> RawEntry:
    """The RawEntry ``parse_feed`` makes of an item (checked against the Pipeline's rows)."""
    return RawEntry(
        guid=item.guid, link=item.link, title=item.title or "", summary=item.description or "",
        content=item.content or "", published=item.published, author=item.author,
    )  # fmt: skip


def _item_rows(items: Sequence[FeedItem], spec: SourceSpec, now: datetime) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for entry in items:
        item = normalise(_raw(entry), spec, now)
        rows.setdefault(item.id, {
            "id": item.id, "source_id": item.source_id, "outlet": item.outlet,
            "url": item.url, "title": item.title, "summary": item.summary, "body": item.body,
            "published": item.published, "seen_at": now, "content_hash": item.content_hash,
            "fingerprint": None,
        })  # fmt: skip
    return list(rows.values())


def catch_up(mw: Metwatch, site: FeedSite, rules: RuleSet, say: Say) -> None:
    """Give feeds a cut cold pass did not store the rows a finished pass would have."""
    with mw.store.engine.connect() as conn:
        done = {
            sid for (sid,) in conn.execute(text("SELECT id FROM sources WHERE etag IS NOT NULL"))
        }
        stored = {
            (row.id, row.content_hash, row.url)
            for row in conn.execute(text("SELECT id, content_hash, url FROM items"))
        }
    specs = {s.id: s for s in rules.sources}
    feeds = range(len(rules.sources))
    now = utc_now()
    missing = [f for f in feeds if source_id(f) not in done]
    checked = [f for f in feeds if source_id(f) in done][:20]
    same = 0
    for f, items in site.items(checked).items():
        rows = _item_rows(items, specs[source_id(f)], now)
        same += all((r["id"], r["content_hash"], r["url"]) in stored for r in rows)
    say(
        f"  catch-up: {len(missing)} feeds not reached by the cold pass get their items and "
        f"validators; check: bench rows == Pipeline rows for {same}/{len(checked)} polled feeds"
    )
    if same != len(checked):
        say("  WARNING: the catch-up rows differ from the Pipeline's; change figures may be off")
    validators = site.validators()
    table, sources = ItemRow.__table__, SourceRow.__table__  # type: ignore[attr-defined]
    known = {item_id for item_id, _, _ in stored}
    for start in range(0, len(missing), 100):
        served = site.items(missing[start : start + 100])
        rows = [
            r
            for f, items in served.items()
            for r in _item_rows(items, specs[source_id(f)], now)
            if r["id"] not in known
        ]
        if rows:
            # OR IGNORE: a poll cancelled at the budget may still be storing in its
            # worker thread, after ``stored`` was read.
            with mw.store.engine.begin() as conn:
                conn.execute(insert(table).prefix_with("OR IGNORE"), rows)
    if missing:
        params = [
            {"sid": source_id(f), "tag": validators[f][0], "modified": validators[f][1]}
            for f in missing
        ]
        statement = (
            update(sources)
            .where(sources.c.id == bindparam("sid"))
            .values(etag=bindparam("tag"), last_modified=bindparam("modified"))
        )
        with mw.store.engine.begin() as conn:
            conn.execute(statement, params)


@dataclass
class Results:
    cold: list[Pass]
    #: The baseline run right after each cold pass: (wall, entries).
    base: list[tuple[float, int]]
    warm: list[Pass]
    change: list[Pass]
    peak_rss_mb: float
    tracemalloc_mb: float | None = None

    def ratios(self) -> list[float]:
        """Cold throughput over the baseline's, pass by pass (each pair ran back to
        back, so a slower minute of a shared machine slows both)."""
        return [
            (p.new_items / p.wall) / (entries / wall)
            for p, (wall, entries) in zip(self.cold, self.base, strict=True)
        ]


async def measured(site: FeedSite, run: Awaitable[Pass]) -> Pass:
    """``run``, with the feed site's CPU meanwhile recorded."""
    before = site.cpu()
    p = await run
    p.site_cpu = site.cpu() - before
    p.peak_rss = rss_mb()
    return p


async def run_metwatch(
    site: FeedSite, rules: RuleSet, repeats: int, budget: float, base_feeds: int, *,
    trace: bool, say: Say, cold_only: bool = False,
) -> Results:  # fmt: skip
    """Cold passes, each followed by the baseline; then (unless ``cold_only``) warm
    and change passes on the last cold pass's database."""
    n = site.n_feeds
    cold: list[Pass] = []
    base: list[tuple[float, int]] = []
    warm: list[Pass] = []
    change: list[Pass] = []
    peak = 0.0
    for r in range(repeats):
        # Once the first pass has been cut at the budget (the target), the verdict is
        # known; later repeats get half the time, only for the throughput median.
        this_budget = budget / 2 if cold and cold[0].budget is not None else budget
        with tempfile.TemporaryDirectory(prefix="metwatch-bench-") as tmp:
            mw = Metwatch.open(Path(tmp), rules)
            try:
                cold.append(await measured(site, cold_pass(mw, this_budget)))
                say(f"  cold   #{r + 1}: {cold[-1].line()}")
                base.append(baseline(site, range(base_feeds)))
                wall, entries = base[-1]
                say(f"  baseline #{r + 1} (sequential httpx.get + feedparser.parse, "
                    f"{base_feeds} feeds): {wall:.2f} s wall, {entries} items")  # fmt: skip
                if r < repeats - 1 or cold_only:
                    continue
                # The worker processes are metwatch too: their peak adds to the main one's.
                main_rss, worker_rss = rss_mb(), mw.worker_peak_rss()
                peak = main_rss + worker_rss
                say(f"  peak RSS: main process {main_rss:.0f} MB + worker processes "
                    f"{worker_rss:.0f} MB")  # fmt: skip
                # The last database goes on to the warm and change passes.
                catch_up(mw, site, rules, say)
                for w in range(repeats):
                    warm.append(await measured(site, timed_tick(mw)))
                    say(f"  warm   #{w + 1}: {warm[-1].line()}")
                for c in range(repeats):
                    feeds = sorted(random.Random(c).sample(range(n), max(1, n // 10)))
                    site.change(feeds, version=c + 1)
                    change.append(await measured(site, timed_tick(mw)))
                    say(f"  change #{c + 1}: {change[-1].line()}")
            finally:
                await mw.close()
    results = Results(cold, base, warm, change, peak)
    if trace:
        with tempfile.TemporaryDirectory(prefix="metwatch-bench-") as tmp:
            mw = Metwatch.open(Path(tmp), rules)
            try:
                tracemalloc.start()
                extra = await cold_pass(mw, budget * 3)
                results.tracemalloc_mb = tracemalloc.get_traced_memory()[1] / 1e6
                tracemalloc.stop()
                say(f"  cold under tracemalloc (3x budget, not counted): {extra.line()}")
            finally:
                await mw.close()
    return results


# -- the naive baseline -----------------------------------------------------------------


def baseline(site: FeedSite, feeds: Iterable[int]) -> tuple[float, int]:
    """Sequential httpx.get + feedparser.parse, no conditional GET: (wall, entries)."""
    gc.collect()
    entries = 0
    start = time.perf_counter()
    for feed in feeds:
        response = httpx.get(site.url(feed), timeout=TIMEOUT)
        response.raise_for_status()
        entries += len(feedparser.parse(response.content).entries)
    return time.perf_counter() - start, entries


# -- profile ----------------------------------------------------------------------------

#: (label, file suffix, function name) for the per-stage breakdown; stages that the
#: current code does not have (no calls) are left out of the table.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("Pipeline.poll (everything)", "metwatch/pipeline.py", "poll"),
    ("  Fetcher._get (httpx)", "watchers/fetch.py", "_get"),
    ("  Pipeline._sort", "metwatch/pipeline.py", "_sort"),
    ("    ItemStore.sort_items", "metwatch/store/items.py", "sort_items"),
    ("  Pipeline._store_classified", "metwatch/pipeline.py", "_store_classified"),
    ("    StoryFiler.file (clustering)", "metwatch/filing.py", "file"),
    ("      StoryStore.story_coverage", "metwatch/store/stories.py", "story_coverage"),
    ("      StoryIndex.assign", "bot/stories.py", "assign"),
    ("      StoryFiling.file", "metwatch/store/stories.py", "file"),
    ("      StoryFiling.insert_items", "metwatch/store/stories.py", "insert_items"),
    ("    ItemStore.insert_items (no flagged item)", "metwatch/store/items.py", "insert_items"),
    ("  SourceStore.record_success", "metwatch/store/sources.py", "record_success"),
    ("all SQLAlchemy Session.execute", "sqlalchemy/orm/session.py", "execute"),
    ("all sqlite3 Cursor.execute", "~", "<method 'execute' of 'sqlite3.Cursor' objects>"),
)  # fmt: skip


def _cumulative(stats: pstats.Stats, suffix: str, name: str) -> tuple[float, int]:
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total, calls = 0.0, 0
    for (filename, _line, func), (_cc, nc, _tt, ct, _callers) in table.items():
        if func == name and filename.replace("\\", "/").endswith(suffix):
            total, calls = total + ct, calls + nc
    return total, calls


#: The stages of a pass where every feed answers 304.
WARM_STAGES: tuple[tuple[str, str, str], ...] = (
    ("Pipeline.tick", "metwatch/pipeline.py", "tick"),
    ("  SourceStore.make_all_due", "metwatch/store/sources.py", "make_all_due"),
    ("  SourceStore.claim_due_sources", "metwatch/store/sources.py", "claim_due_sources"),
    ("  Pipeline.poll", "metwatch/pipeline.py", "poll"),
    ("    Fetcher.fetch (httpx request/response)", "watchers/fetch.py", "fetch"),
    ("    SourceStore.record_success", "metwatch/store/sources.py", "record_success"),
    ("all SQLAlchemy Session.commit", "sqlalchemy/orm/session.py", "commit"),
    ("all sqlite3 Cursor.execute", "~", "<method 'execute' of 'sqlite3.Cursor' objects>"),
)


#: Synchronous steps timed with time.thread_time by wrapping them (no profiler, so
#: no distortion): (label, module or class, attribute). Missing names are skipped.
TIMED: tuple[tuple[str, str, str], ...] = (
    ("ItemStore.sort_items", "metwatch.store.items:ItemStore", "sort_items"),
    ("ItemStore.insert_items (no flagged item)", "metwatch.store.items:ItemStore", "insert_items"),
    ("StoryFiler.file (clustering, all)", "metwatch.filing:StoryFiler", "file"),
    ("  StoryStore.story_coverage", "metwatch.store.stories:StoryStore", "story_coverage"),
    ("  filing._candidate", "metwatch.filing", "_candidate"),
    ("  StoryFiler.sync", "metwatch.filing:StoryFiler", "sync"),
    ("  StoryIndex.assign", "bot.stories:StoryIndex", "assign"),
    ("  StoryFiling.file (SQL)", "metwatch.store.stories:StoryFiling", "file"),
    ("  StoryFiling.insert_items", "metwatch.store.stories:StoryFiling", "insert_items"),
    ("SourceStore.record_success", "metwatch.store.sources:SourceStore", "record_success"),
    ("SourceStore.claim_due_sources", "metwatch.store.sources:SourceStore", "claim_due_sources"),
)  # fmt: skip


@contextlib.contextmanager
def stage_timers(table: dict[str, list[float]]) -> Iterator[None]:
    """Accumulate CPU seconds and calls of the TIMED steps into ``table`` meanwhile."""
    patched: list[tuple[Any, str, Any]] = []
    for label, where, name in TIMED:
        module_name, _, class_name = where.partition(":")
        owner: Any = importlib.import_module(module_name)
        if class_name:
            owner = getattr(owner, class_name)
        original = owner.__dict__.get(name) if class_name else getattr(owner, name, None)
        if original is None:
            continue
        cell = table.setdefault(label, [0.0, 0.0])

        def timed(*args: Any, _f: Any = original, _cell: list[float] = cell, **kw: Any) -> Any:
            # thread_time: stages run in worker threads, and process_time would
            # charge one stage with the CPU of others running meanwhile.
            start = time.thread_time()
            try:
                return _f(*args, **kw)
            finally:
                _cell[0] += time.thread_time() - start
                _cell[1] += 1

        setattr(owner, name, timed)
        patched.append((owner, name, original))
    try:
        yield
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def _print_stages(title: str, p: Pass, table: dict[str, list[float]], say: Say) -> None:
    say(f"\n## Stage timers (CPU, no profiler): {title}")
    say(p.line())
    head = f"{'step (includes what it calls)':42} {'CPU s':>7} {'of pass':>8} {'calls':>7}"
    say(f"{head} {'ms/call':>8}")
    for label, _, _ in TIMED:
        seconds, calls = table.get(label, [0.0, 0.0])
        if calls:
            share = seconds / p.cpu if p.cpu else 0.0
            each = 1000 * seconds / calls
            say(f"{label:42} {seconds:7.2f} {share:8.0%} {calls:7.0f} {each:8.2f}")
    say(f"{'worker processes (parse, normalise, classify, prepare)':42} {p.worker_cpu:7.2f}")
    rest = p.cpu - p.worker_cpu - _top_level(table)
    say(f"{'(the rest: HTTP, asyncio, logging)':42} {rest:7.2f}")


def _top_level(table: dict[str, list[float]]) -> float:
    return sum(v[0] for label, v in table.items() if not label.startswith(" "))


async def _profiled_tick(mw: Metwatch) -> tuple[Pass, cProfile.Profile]:
    profiler = cProfile.Profile(time.process_time)
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    profiler.enable()
    results = await mw.pipeline.tick(everything=True)
    profiler.disable()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return _from_results(results, wall, cpu), profiler


def _print_profile(
    title: str, p: Pass, profiler: cProfile.Profile, stages: Sequence[tuple[str, str, str]],
    say: Say, *, top: int,
) -> None:  # fmt: skip
    stats = pstats.Stats(profiler)
    table = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_cc, _nc, _tt, ct, _callers) in table.values())
    say(f"\n## cProfile (CPU clock): {title}")
    say(f"{p.line()}; {total:.2f} s CPU profiled (the profiler's own cost included)")
    say(
        f"{'stage (cumulative: includes what it calls)':46} {'CPU s':>7} {'share':>6} {'calls':>7}"
    )
    for label, suffix, name in stages:
        seconds, calls = _cumulative(stats, suffix, name)
        if not calls:
            continue
        share = 100 * seconds / total if total else 0.0
        say(f"{label:46} {seconds:7.2f} {share:5.1f}% {calls:7d}")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        body = out.getvalue()
        say(f"\n-- top {top} by {order} --")
        say(body[body.find("   ncalls") :].rstrip())


async def profile_passes(site: FeedSite, folder: Path, say: Say) -> None:
    """cProfile a cold pass (no budget) and then a warm pass over the first 100 feeds.

    The fetch timeout is raised to 600 s: under the profiler the event loop is blocked
    for longer, and feeds timing out would leave the profile with less work in it.
    """
    n = min(PROFILE_FEEDS, site.n_feeds)
    rules = load_rules(write_rules(folder, site, n))
    with tempfile.TemporaryDirectory(prefix="metwatch-bench-") as tmp:
        mw = Metwatch.open(Path(tmp), rules, timeout=600)
        try:
            cold_table: dict[str, list[float]] = {}
            with stage_timers(cold_table):
                cold = await timed_tick(mw)
            catch_up(mw, site, rules, say)
            warm_table: dict[str, list[float]] = {}
            with stage_timers(warm_table):
                warm = await timed_tick(mw)
        finally:
            await mw.close()
    _print_stages(f"cold pass over {n} feeds, no budget", cold, cold_table, say)
    _print_stages(f"warm pass over the same {n} feeds", warm, warm_table, say)
    with tempfile.TemporaryDirectory(prefix="metwatch-bench-") as tmp:
        mw = Metwatch.open(Path(tmp), rules, timeout=600)
        try:
            cold, cold_profile = await _profiled_tick(mw)
            catch_up(mw, site, rules, say)  # in case a feed failed all the same
            warm, warm_profile = await _profiled_tick(mw)
        finally:
            await mw.close()
    _print_profile(f"cold pass over {n} feeds, no budget", cold, cold_profile, STAGES, say,
                   top=20)  # fmt: skip
    _print_profile(f"warm pass over the same {n} feeds", warm, warm_profile, WARM_STAGES, say,
                   top=15)  # fmt: skip


# -- parser comparison --------------------------------------------------------------------

#: guid, link, title, date, then (compared apart) the summary HTML and the author.
Fields = tuple[str, str, str, datetime | None, str, str]
FIELD_NAMES = ("guid", "link", "title", "date", "summary", "author")


def _feedparser_fields(entry: Any) -> Fields:
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    date = datetime.fromtimestamp(calendar.timegm(when), UTC) if when else None
    return (
        entry.get("id", ""), entry.get("link", ""), entry.get("title", ""), date,
        entry.get("summary", ""), entry.get("author", ""),
    )  # fmt: skip


def _fastfeedparser_fields(entry: Any) -> Fields:
    """fastfeedparser names the summary ``description`` and gives ISO 8601 dates."""
    raw = entry.get("published") or entry.get("updated")
    date = datetime.fromisoformat(raw).astimezone(UTC) if raw else None
    return (
        entry.get("id", ""), entry.get("link", ""), entry.get("title", ""), date,
        entry.get("description", ""), entry.get("author", ""),
    )  # fmt: skip


def compare_parsers(n_feeds: int, say: Say) -> None:
    """Time the parsers on the corpus (best of 2) and compare what they read."""
    docs = [render(base_items(feed)) for feed in range(n_feeds)]
    megabytes = sum(len(d) for d in docs) / 1e6
    say(f"\n## Parsers on {n_feeds} feeds of the corpus ({megabytes:.1f} MB), best of 2")

    def as_metwatch(doc: bytes) -> Any:
        return feedparser.parse(doc, sanitize_html=False)

    def without_uris(doc: bytes) -> Any:
        return feedparser.parse(doc, sanitize_html=False, resolve_relative_uris=False)

    parsers: list[tuple[str, Callable[[bytes], Any], Callable[[Any], Fields]]] = [
        ("feedparser, as metwatch calls it", as_metwatch, _feedparser_fields),
        ("feedparser defaults (the baseline's)", feedparser.parse, _feedparser_fields),
        ("feedparser, resolve_relative_uris=False", without_uris, _feedparser_fields),
    ]
    try:
        fastfeedparser = importlib.import_module("fastfeedparser")
    except ImportError:
        say("fastfeedparser is not installed (pip install fastfeedparser to compare it)")
    else:
        parsers.append(("fastfeedparser", fastfeedparser.parse, _fastfeedparser_fields))
    reference: list[list[Fields]] = []
    reference_seconds = 0.0
    for label, parse, fields in parsers:
        best, parsed = float("inf"), []
        for _ in range(2):
            gc.collect()
            start = time.perf_counter()
            parsed = [parse(doc) for doc in docs]
            best = min(best, time.perf_counter() - start)
        rows = [[fields(e) for e in p.entries] for p in parsed]
        entries = sum(len(r) for r in rows)
        if not reference:
            reference, reference_seconds = rows, best
        say(
            f"{label:42} {best:6.2f} s {1000 * best / n_feeds:6.1f} ms/feed "
            f"{entries / best:7.0f} items/s {reference_seconds / best:5.2f}x"
        )
        say(f"  {_agreement(reference, rows)}")
        if label == "fastfeedparser":
            say(f"  entry keys: {sorted(parsed[0].entries[0].keys())}")
            say(f"  {_same_items(docs, parsed)}")
    _proven_subset(docs, say)


def _best_of_two(run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(2):
        gc.collect()
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _proven_subset(docs: Sequence[bytes], say: Say) -> None:
    """What a cold pass pays per new source's body: feedparser and the run-time proof
    (parse_feed + the fast path), against the fast path from the first poll for a body
    inside the proven subset (well-formedness parse, subset check, fastfeedparser)."""
    n = len(docs)
    roots = [_well_formed_root(doc) for doc in docs]  # the fast path parses it anyway
    accepted = sum(r is not None and in_subset(d, r) for d, r in zip(docs, roots, strict=True))
    check = _best_of_two(lambda: [in_subset(d, r) for d, r in zip(docs, roots, strict=True)])
    reference = _best_of_two(lambda: [parse_feed(doc, _ORIGIN) for doc in docs])
    proof = _best_of_two(lambda: [read_and_prove(doc, _ORIGIN) for doc in docs])
    unproven = _best_of_two(lambda: [read_unproven(doc, _ORIGIN) for doc in docs])
    in_subset_reads = sum(read_unproven(doc, _ORIGIN)[1] == "subset" for doc in docs)
    say(f"\n## The proven subset (watchers/feed_subset.py) on the same {n} feeds, best of 2")
    say(f"subset check alone (on the lxml tree)       {1000 * check / n:6.3f} ms/feed; accepts "
        f"{accepted}/{n} feeds")  # fmt: skip
    for label, seconds in [
        ("parse_feed (feedparser, the reference)", reference),
        ("run-time proof: parse_feed + fast path", proof),
        ("first poll inside: tree + check + fast", unproven),
    ]:
        say(f"{label:42} {1000 * seconds / n:6.2f} ms/feed {reference / seconds:5.2f}x")
    say(f"  read_unproven took the fast path for {in_subset_reads}/{n} feeds")


def _fastfeedparser_raw(entry: Any) -> RawEntry:
    """What ``watchers.parse._entry`` would make of a fastfeedparser entry."""
    summary = entry.get("description", "") or ""
    contents = [c.get("value", "") for c in entry.get("content") or []]
    content = max(contents, key=len) if contents else ""
    if content == summary:  # fastfeedparser copies the description into "content"
        content = ""
    raw = entry.get("published") or entry.get("updated")
    return RawEntry(
        guid=entry.get("id") or None, link=entry.get("link") or None,
        title=entry.get("title", "") or "", summary=summary, content=content,
        published=datetime.fromisoformat(raw).astimezone(UTC) if raw else None,
        author=entry.get("author") or None,
    )  # fmt: skip


def _same_items(docs: Sequence[bytes], fast: Sequence[Any]) -> str:
    """Whether metwatch would store the same Items (ids, text, dates, hashes) either way."""
    spec = SourceSpec("bench", "Example News", "feed", _ORIGIN, INTERVAL)
    now = utc_now()
    same = total = 0
    for doc, parsed in zip(docs, fast, strict=True):
        ours = [normalise(e, spec, now) for e in parse_feed(doc, _ORIGIN).entries]
        theirs = [normalise(_fastfeedparser_raw(e), spec, now) for e in parsed.entries]
        total += len(ours)
        same += sum(a == b for a, b in zip(ours, theirs, strict=False))
    return (
        f"normalised Items (id, url, title, summary, body, date, hash) via parse_feed vs via "
        f"fastfeedparser + an adapter: {same}/{total} identical"
    )


def _agreement(reference: list[list[Fields]], rows: list[list[Fields]]) -> str:
    names = FIELD_NAMES
    differ = dict.fromkeys(names, 0)
    example, count = "", 0
    for ref_feed, feed in zip(reference, rows, strict=True):
        if len(ref_feed) != len(feed):
            return f"entry counts differ ({len(ref_feed)} vs {len(feed)})"
        for ref, got in zip(ref_feed, feed, strict=True):
            count += 1
            for name, a, b in zip(names, ref, got, strict=True):
                if a != b:
                    differ[name] += 1
                    example = example or f"{name}: {str(a)[:80]!r} vs {str(b)[:80]!r}"
    if not any(differ.values()):
        return f"{', '.join(names)} identical to the first row's on all {count} entries"
    detail = ", ".join(f"{k} {v}" for k, v in differ.items() if v)
    return f"DIFFERENT from the first row's on {count} entries: {detail}; e.g. {example}"


# -- report ------------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def median(values: Iterable[float]) -> float:
    return float(statistics.median(values))


def report(results: Results, base_feeds: int, n: int, say: Say) -> None:
    scale = n / 1000
    cold, base = results.cold, results.base
    cold_wall = median(p.wall for p in cold)  # only used when no pass was cut
    cold_rate = median(p.new_items / p.wall for p in cold)
    cold_cut = [p for p in cold if p.budget is not None]
    base_wall = median(w for w, _ in base)
    base_rate = median(i / w for w, i in base)
    ratio = median(results.ratios())
    warm_wall = median(p.wall for p in results.warm)
    warm_cpu = median(p.cpu for p in results.warm)
    expected = max(1, n // 10)
    new_counts = [p.new_items for p in results.change]
    #: (measure, figure, target, verdict: PASS/MISS, a word, or None for none).
    rows: list[tuple[str, str, str, bool | str | None]] = []
    if cold_cut:
        first = cold[0].budget or cold[0].wall
        done = ", ".join(f"{p.new_items} in {p.wall:.0f} s" for p in cold)
        full = median(p.wall * n * ITEMS_PER_FEED / max(p.new_items, 1) for p in cold_cut)
        rows += [
            ("cold: wall (cut at the budget)", f"> {first:g} s",
             f"<= {COLD_WALL_TARGET * scale:g} s",
             False if first >= COLD_WALL_TARGET * scale else "UNSURE: raise --cold-budget"),
            ("cold: items stored, each repeat", done, f"of {n * ITEMS_PER_FEED}", None),
            ("cold: full pass, extrapolated (linear)", f"~{full:.0f} s", "", None),
        ]  # fmt: skip
    else:
        rows.append(("cold: wall", f"{cold_wall:.2f} s", f"<= {COLD_WALL_TARGET * scale:g} s",
                     cold_wall <= COLD_WALL_TARGET * scale))  # fmt: skip
    errors = median(len(p.errors) for p in cold)
    timeouts = median(sum("timed out" in e for e in p.errors) for p in cold)
    rows += [
        ("cold: throughput", f"{cold_rate:.0f} items/s", "", None),
        ("cold: CPU per item stored",
         f"{median(1000 * p.cpu / max(p.new_items, 1) for p in cold):.1f} ms", "", None),
        ("cold: CPU / wall", f"{median(p.cpu / p.wall for p in cold):.0%}", "", None),
        ("cold: items flagged", f"{median(p.flagged for p in cold):.0f}", "", None),
        ("cold: sources failed (of which timeouts)", f"{errors:.0f} ({timeouts:.0f})", "= 0",
         errors == 0),
        (f"baseline: wall ({base_feeds} feeds)", f"{base_wall:.2f} s", "", None),
        (f"baseline: wall, {n} feeds (linear)", f"~{base_wall * n / base_feeds:.0f} s", "", None),
        ("baseline: throughput", f"{base_rate:.0f} items/s", "", None),
        ("cold / baseline throughput (pass by pass)", f"{ratio:.2f}x",
         f">= {COLD_RATIO_TARGET:g}x", ratio >= COLD_RATIO_TARGET),
        ("  each pair", ", ".join(f"{r:.2f}x" for r in results.ratios()), "", None),
        ("peak RSS (main + worker processes, cold)", f"{results.peak_rss_mb:.0f} MB",
         f"<= {RSS_TARGET_MB:g} MB", results.peak_rss_mb <= RSS_TARGET_MB),
        ("warm (all 304): wall", f"{warm_wall:.2f} s", f"<= {WARM_WALL_TARGET * scale:g} s",
         warm_wall <= WARM_WALL_TARGET * scale),
        ("warm (all 304): CPU", f"{warm_cpu:.2f} s", f"<= {WARM_CPU_TARGET * scale:g} s",
         warm_cpu <= WARM_CPU_TARGET * scale),
        ("warm: 304 answers", f"{median(p.not_modified for p in results.warm):.0f}", f"= {n}",
         all(p.not_modified == n for p in results.warm)),
        ("10% changed: wall", f"{median(p.wall for p in results.change):.2f} s", "", None),
        ("10% changed: CPU", f"{median(p.cpu for p in results.change):.2f} s", "", None),
        ("10% changed: new items, each repeat", ", ".join(map(str, new_counts)),
         f"= {expected}", all(c == expected for c in new_counts)),
        ("10% changed: flagged, each repeat", ", ".join(str(p.flagged) for p in results.change),
         "", None),
    ]  # fmt: skip
    if results.tracemalloc_mb is not None:
        rows.append(("tracemalloc peak (extra cold pass)", f"{results.tracemalloc_mb:.0f} MB",
                     "", None))  # fmt: skip
    say(f"\n## Results: medians of {len(cold)} repeat(s), {n} feeds")
    say(f"{'measure':42} {'figure':>17}   {'target':12}")
    for label, figure, target, ok in rows:
        verdict = mark(ok) if isinstance(ok, bool) else ok or ""
        say(f"{label:42} {figure:>17}   {target:12} {verdict}")
    if n != 1000:
        say(f"(time and CPU targets scaled by {n}/1000 feeds; ratio and RSS targets are not)")


# -- with a network in the way ---------------------------------------------------------


@dataclass
class Networked:
    latency_ms: float
    results: Results


def network_passes(
    n: int, latency_ms: float, repeats: int, budget: float, base_feeds: int, say: Say
) -> Networked:
    """Cold passes and the baseline, pair by pair, against a site ``latency_ms`` away.

    On loopback the baseline is bound by feedparser's CPU; against real sites it
    mostly waits for answers, one at a time, while metwatch overlaps its fetches
    (up to the fetch limit). Warm and change passes are left to the loopback run.
    """
    say(f"\n## with a network in the way: the site answers after {latency_ms:g} ms")
    site = FeedSite(n, latency_ms / 1000)
    try:
        with tempfile.TemporaryDirectory(prefix="metwatch-bench-rules-") as tmp:
            rules = load_rules(write_rules(Path(tmp), site, n))
            results = asyncio.run(
                run_metwatch(site, rules, repeats, budget, base_feeds, trace=False, say=say,
                             cold_only=True)
            )  # fmt: skip
    finally:
        site.stop()
    return Networked(latency_ms, results)


def report_network(loopback: Results, networked: Sequence[Networked], say: Say) -> None:
    """cold / baseline at each latency, loopback first: medians of the pairs."""
    say("\n## cold pass / baseline by latency (medians; ratios pass by pass)")
    head = f"{'latency':>8} {'cold wall':>10} {'cold items/s':>13} {'baseline items/s':>17}"
    say(f"{head} {'ratio':>7}   {'target':8}")
    for ms, results in [(0.0, loopback), *((x.latency_ms, x.results) for x in networked)]:
        cold_wall = median(p.wall for p in results.cold)
        cold_rate = median(p.new_items / p.wall for p in results.cold)
        base_rate = median(i / w for w, i in results.base)
        ratio = median(results.ratios())
        verdict = mark(ratio >= COLD_RATIO_TARGET)
        say(f"{ms:6g} ms {cold_wall:8.2f} s {cold_rate:13.0f} {base_rate:17.0f} "
            f"{ratio:6.2f}x   >= {COLD_RATIO_TARGET:g}x {verdict}")  # fmt: skip


def _milliseconds(text_: str) -> list[float]:
    values = [float(x) for x in text_.split(",") if x.strip()]
    return [v for v in values if v > 0]


# -- main --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="metwatch polling benchmark (see the module docstring)."
    )
    parser.add_argument("--feeds", type=int, default=1000, help="feeds served (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per pass (default 3)")
    parser.add_argument("--quick", action="store_true", help="100 feeds, 1 repeat")
    parser.add_argument(
        "--cold-budget", type=float, default=None, metavar="S",
        help="cancel a cold pass after S seconds (default: the target, 60 s x feeds/1000)",
    )  # fmt: skip
    parser.add_argument(
        "--baseline-feeds", type=int, default=50, metavar="K",
        help="feeds the sequential baseline fetches per repeat (default 50)",
    )  # fmt: skip
    parser.add_argument(
        "--latency", type=float, default=0.0, metavar="MS",
        help="the site waits MS milliseconds before every answer (default 0)",
    )  # fmt: skip
    parser.add_argument(
        "--network-latency", type=_milliseconds, default=[200.0], metavar="MS[,MS...]",
        help="then cold passes and the baseline against a site that waits MS ms before "
        "every answer, as remote servers do (default 200; 0 for none)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", action="store_true", help="cProfile a cold and a warm pass over 100 feeds"
    )
    parser.add_argument(
        "--compare-parsers", type=int, default=0, metavar="N",
        help="time feedparser against fastfeedparser on N feeds of the corpus (any N)",
    )  # fmt: skip
    parser.add_argument(
        "--tracemalloc", action="store_true", help="add a cold pass under tracemalloc"
    )
    parser.add_argument(
        "--workers", type=int, default=WORKER_PROCESSES, metavar="N",
        help="worker processes, as METWATCH_WORKER_PROCESSES (default 1; 0: none)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    globals()["WORKER_PROCESSES"] = args.workers
    if args.quick:
        args.feeds, args.repeats = 100, 1
    if not 1 <= args.feeds <= TICK_LIMIT:
        parser.error(f"--feeds must be 1..{TICK_LIMIT} (Pipeline.tick claims {TICK_LIMIT})")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    n = args.feeds
    budget = args.cold_budget or COLD_WALL_TARGET * n / 1000
    base_feeds = max(1, min(args.baseline_feeds, n))
    # A SIGTERM still runs the finally blocks (site process, temporary folders).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def say(line: str) -> None:
        print(line, flush=True)

    started = time.perf_counter()
    say(f"# metwatch polling benchmark: {n} feeds x {ITEMS_PER_FEED} items, "
        f"{args.repeats} repeat(s)")  # fmt: skip
    say("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + f" ({os.cpu_count()} CPUs)")  # fmt: skip
    site = FeedSite(n, args.latency / 1000)
    try:
        sizes = sorted(site.sizes)
        say(
            f"feed site: {site.base_url}, a separate process; bodies "
            f"{sizes[0] / 1e3:.0f}-{sizes[-1] / 1e3:.0f} KB (median {median(sizes) / 1e3:.0f} KB,"
            f" total {sum(sizes) / 1e6:.1f} MB); latency {args.latency:g} ms"
        )
        say(
            f"Fetcher: max_concurrent={MAX_CONCURRENT}, per_host={PER_HOST}, timeout={TIMEOUT:g}"
            " s. All feeds are on ONE host (127.0.0.1), so per_host is raised to max_concurrent:"
            " with the default of 2 per host only 2 fetches would be in flight. Real sources are"
            " spread over many hosts, where max_concurrent is the limit that binds."
        )
        say(
            f"cold pass budget: {budget:g} s (the target): a pass still running then is"
            " cancelled; once the first is cut, later repeats get half, for throughput only"
        )
        with tempfile.TemporaryDirectory(prefix="metwatch-bench-rules-") as tmp:
            folder = Path(tmp)
            rules = load_rules(write_rules(folder, site, n))
            say(f"rules: default findings, {len(rules.sources)} sources, interval {INTERVAL} s")
            say(f"RSS before the first pass: {rss_mb():.0f} MB")
            say("\n## metwatch: tick(everything=True)")
            results = asyncio.run(
                run_metwatch(
                    site, rules, args.repeats, budget, base_feeds, trace=args.tracemalloc,
                    say=say,
                )
            )  # fmt: skip
            report(results, base_feeds, n, say)
            if args.profile:
                asyncio.run(profile_passes(site, folder, say))
        if args.compare_parsers:
            compare_parsers(args.compare_parsers, say)
    finally:
        site_cpu = site.stop()
    networked = [network_passes(n, ms, args.repeats, budget, base_feeds, say)
                 for ms in args.network_latency]  # fmt: skip
    if networked:
        report_network(results, networked, say)
    say(f"\nfeed-site process CPU (not in the figures): {site_cpu:.1f} s")
    say("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    say(f"total benchmark time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
