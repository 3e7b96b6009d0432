"""Pure stages in real worker processes: the same result as in-process, errors come
back with their sentence, and a worker that dies fails one call, not metwatch."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from classifiers.match import match_item
from classifiers.rules import RuleSet, load_rules
from metwatch.errors import ParseError, SourceError
from metwatch.models import Item, PollOutcome, SourceSpec
from metwatch.offload import Verdict, classify_and_prepare, read_and_normalise, remember
from metwatch.pipeline import Pipeline
from metwatch.store import open_store
from metwatch.workers import Offload, WorkerDied, WorkerPool, WorkerTimedOut
from tests.conftest import ROOT, RULES_PATH
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, realistic_feed, rss
from watchers.article import article_from_text
from watchers.fastparse import FeedParser
from watchers.fetch import Fetcher
from watchers.normalise import normalise
from watchers.parse import parse_feed

URL = "http://feeds.example/news.xml"
NOW = datetime(2024, 8, 15, 18, 0, tzinfo=UTC)


def die() -> None:
    """What a C-level crash or the OOM killer does to the process running a call."""
    os._exit(1)


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    pool = WorkerPool(1)
    yield pool
    pool.close()


def test_a_worker_parses_as_feedparser_does(pool: WorkerPool) -> None:
    body = realistic_feed(20, seed=3).encode()

    parsed = pool.run(parse_feed, body, URL, "application/rss+xml")

    assert parsed == parse_feed(body, URL, "application/rss+xml")
    assert len(parsed.entries) == 20
    assert len(pool.pids()) == 1 and os.getpid() not in pool.pids()


def test_a_parse_error_comes_back_with_its_sentence(pool: WorkerPool) -> None:
    with pytest.raises(ParseError) as caught:
        pool.run(parse_feed, b"<html><body>Not here</body></html>", URL, "text/html")

    assert caught.value.message == "not a feed: got text/html"
    assert caught.value.url == URL


def test_a_dead_worker_fails_one_call_and_is_replaced(pool: WorkerPool) -> None:
    pool.run(parse_feed, realistic_feed(1, seed=1).encode(), URL)
    first = pool.pids()

    with pytest.raises(WorkerDied, match="died running die"):
        pool.run(die)

    body = realistic_feed(5, seed=2).encode()
    assert pool.run(parse_feed, body, URL) == parse_feed(body, URL)
    assert pool.pids() != first


def sleep_for(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


async def test_a_call_that_outruns_its_time_fails_alone_and_its_worker_is_stopped() -> None:
    pool = WorkerPool(1, call_timeout=1.0)
    try:
        pool.run(slow_echo, 0)
        [first] = pool.pids()
        sleeper = asyncio.create_task(pool.call(sleep_for, 600))
        queued = [asyncio.create_task(pool.call(slow_echo, n)) for n in range(3)]

        with pytest.raises(WorkerTimedOut, match="sleep_for ran longer than 1 s") as caught:
            await sleeper
        # The calls queued behind it run in the worker that replaces it.
        assert await asyncio.gather(*queued) == [0, 1, 2]
    finally:
        pool.close()
    assert caught.value.seconds == 1.0 and isinstance(caught.value, WorkerDied)
    assert not _alive(first), "the worker that ran the call was not stopped"


def raise_timeout() -> None:
    raise TimeoutError("the call's own")


def test_a_calls_own_timeout_error_is_not_the_pools(pool: WorkerPool) -> None:
    with pytest.raises(TimeoutError, match="the call's own"):
        pool.run(raise_timeout)


async def test_cancelling_a_call_stops_it_in_its_worker(pool: WorkerPool) -> None:
    pool.run(slow_echo, 0)
    [first] = pool.pids()
    sleeper = asyncio.create_task(pool.call(sleep_for, 600))
    await asyncio.sleep(0.5)  # running in the worker

    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper

    deadline = time.monotonic() + 10
    while _alive(first) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not _alive(first), "a cancelled call kept its worker busy"
    assert pool.run(slow_echo, 5) == 5


def slow_echo(value: int) -> int:
    time.sleep(0.3)
    return value


async def test_calls_beside_one_that_kills_the_worker_do_not_fail(pool: WorkerPool) -> None:
    # Both in flight in one pool; the worker dies while the innocent call waits or
    # runs, so the pool fails both: run again alone, only the killer fails.
    innocent = [asyncio.create_task(pool.call(slow_echo, n)) for n in range(3)]
    killer = asyncio.create_task(pool.call(die))

    assert await asyncio.gather(*innocent) == [0, 1, 2]
    with pytest.raises(WorkerDied, match="died running die"):
        await killer
    assert pool.run(slow_echo, 7) == 7  # and the pool works on


def test_feed_parser_proves_and_reads_in_the_worker(pool: WorkerPool) -> None:
    parser = FeedParser(proof_polls=1, run=pool.run)
    body = realistic_feed(10, seed=4).encode()

    first = parser.parse("s", body, URL)  # the proof: both parsers, in the worker
    second = parser.parse("s", body, URL)  # proven: the fast path, in the worker

    assert first == second == parse_feed(body, URL)
    assert parser.fast_sources() == ["s"]


def test_a_parser_worker_dying_is_a_parse_error_of_that_source(pool: WorkerPool) -> None:
    def dying(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return pool.run(die)

    parser = FeedParser(run=dying)

    with pytest.raises(ParseError, match="feed parser process died") as caught:
        parser.parse("s", realistic_feed(2, seed=5).encode(), URL)
    assert caught.value.url == URL


def _polling(
    tmp_path: Path, db_url: str, feed_server: FeedServer, client: httpx.AsyncClient,
    offload: Offload,
) -> Pipeline:  # fmt: skip
    rules = load_rules(
        write_rules(tmp_path, [{"id": "news", "name": "News", "url": feed_server.url("/f.xml")}])
    )
    store = open_store(db_url)
    store.subscribe(7, ["met-inspection"], NOW)
    fetcher = Fetcher(client, max_bytes=1_000_000, max_concurrent=4, per_host=2)
    pipeline = Pipeline(store, fetcher, rules, clock=lambda: NOW, offload=offload)
    pipeline.sync_sources()
    return pipeline


SEED = (ROOT / "seeds" / "000_a29e9b15b3bba61a.txt").read_text(encoding="utf-8")
SEED_ITEM = FeedItem(
    title="Met failing victims", link="https://o.example/a", guid="a",
    description=SEED.replace("\n", "<br/>"), published=NOW,
)  # fmt: skip


async def test_a_worker_dying_on_a_body_fails_that_poll_with_a_clear_error(
    pool: WorkerPool, tmp_path: Path, db_url: str, feed_server: FeedServer
) -> None:
    async def hostile_dies(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if fn is read_and_normalise and b"hostile" in args[1]:
            return await pool.call(die)
        return await pool.call(fn, *args, **kwargs)

    async with httpx.AsyncClient(timeout=5) as client:
        pipeline = _polling(tmp_path, db_url, feed_server, client, hostile_dies)
        feed_server.serve("/f.xml", rss([FeedItem(title="hostile", guid="h")]), etag='"1"')
        [failed] = await pipeline.tick(everything=True)
        feed_server.serve("/f.xml", rss([SEED_ITEM]), etag='"2"')
        [polled] = await pipeline.tick(everything=True)

    assert isinstance(failed.value, ParseError)
    assert "feed parser process died" in failed.value.message
    # The next body is read by a fresh worker.
    assert isinstance(polled.value, PollOutcome) and len(polled.value.flagged) == 1


async def test_a_body_that_outruns_the_time_limit_fails_its_poll_alone(
    tmp_path: Path, db_url: str, feed_server: FeedServer
) -> None:
    # 8 MB of malformed XML (an undefined entity): feedparser's slow path, which
    # takes several seconds here, against a limit of 2 s.
    huge = realistic_feed(50, seed=8, target_bytes=8_000_000).replace(
        "</channel>", "&nbsp;</channel>"
    )
    feed_server.serve("/huge.xml", huge)
    feed_server.serve("/news.xml", rss([SEED_ITEM]))
    rules = load_rules(
        write_rules(tmp_path, [
            {"id": "huge", "name": "Huge", "url": feed_server.url("/huge.xml")},
            {"id": "news", "name": "News", "url": feed_server.url("/news.xml")},
        ])
    )  # fmt: skip
    store = open_store(db_url)
    pool = WorkerPool(1, call_timeout=2.0, preload=("metwatch.offload",))
    try:
        async with httpx.AsyncClient(timeout=20) as client:
            fetcher = Fetcher(client, max_bytes=10_000_000, max_concurrent=4, per_host=2)
            pipeline = Pipeline(store, fetcher, rules, clock=lambda: NOW, offload=pool.call)
            pipeline.sync_sources()
            results = {r.source_id: r.value for r in await pipeline.tick(everything=True)}
    finally:
        pool.close()

    failed = results["huge"]
    assert isinstance(failed, ParseError)
    assert failed.message == (
        "reading this body took longer than 2 s, so it was stopped; "
        "the feed is probably huge or hostile"
    )
    assert failed.url == feed_server.url("/huge.xml")
    # Recorded on the source, which backs off; the other source is read as usual.
    huge_health = {h.id: h for h in store.source_health()}["huge"]
    assert huge_health.last_error is not None and "took longer than 2 s" in huge_health.last_error
    assert huge_health.error_count == 1
    polled = results["news"]
    assert isinstance(polled, PollOutcome) and len(polled.flagged) == 1


async def test_classification_that_outruns_the_time_limit_fails_the_poll_and_loses_nothing(
    tmp_path: Path, db_url: str, feed_server: FeedServer
) -> None:
    pool = WorkerPool(1, call_timeout=1.0, preload=("metwatch.offload",))
    stalled = True

    async def classification_stalls(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if fn is classify_and_prepare and stalled:
            return await pool.call(sleep_for, 600)
        return await pool.call(fn, *args, **kwargs)

    feed_server.serve("/f.xml", rss([SEED_ITEM]))
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            pipeline = _polling(tmp_path, db_url, feed_server, client, classification_stalls)
            [failed] = await pipeline.tick(everything=True)
            stalled = False
            [polled] = await pipeline.tick(everything=True)
    finally:
        pool.close()

    assert isinstance(failed.value, SourceError)
    assert failed.value.message == (
        "classifying 1 item took longer than 1 s, so it was stopped; see the log"
    )
    # Nothing was stored: the next poll finds the item new, and files its story.
    assert isinstance(polled.value, PollOutcome) and len(polled.value.flagged) == 1
    assert [d.chat_id for d in pipeline.store.pending_deliveries(NOW)] == [7]


async def test_a_worker_dying_on_classification_still_files_the_story(
    pool: WorkerPool, tmp_path: Path, db_url: str, feed_server: FeedServer
) -> None:
    async def classification_dies(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if fn is classify_and_prepare:
            return await pool.call(die)
        return await pool.call(fn, *args, **kwargs)

    feed_server.serve("/f.xml", rss([SEED_ITEM]))
    async with httpx.AsyncClient(timeout=5) as client:
        pipeline = _polling(tmp_path, db_url, feed_server, client, classification_dies)
        [polled] = await pipeline.tick(everything=True)

    # Classified in metwatch's own process instead: the story, its findings and its
    # delivery, without a summary.
    assert isinstance(polled.value, PollOutcome) and len(polled.value.flagged) == 1
    store = pipeline.store
    [story] = store.recent_stories()
    assert story.summary == ()
    assert story.matches and [link.url for link in story.links] == ["https://o.example/a"]
    assert [d.chat_id for d in store.pending_deliveries(NOW)] == [7]


def _seed_items() -> list[Item]:
    spec = SourceSpec("seed", "Outlet", "feed", "file:", 3600)
    return [
        normalise(article_from_text(path.read_text(encoding="utf-8"), link=f"https://o/{n}"),
                  spec, NOW)
        for n, path in enumerate(sorted((ROOT / "seeds").glob("*.txt")))
    ]  # fmt: skip


def test_a_worker_classifies_as_metwatch_does_and_follows_a_rules_reload(
    pool: WorkerPool, tmp_path: Path, rules: RuleSet
) -> None:
    items = _seed_items()

    verdicts = pool.run(classify_and_prepare, remember(rules), items)

    assert [found for found, _ in verdicts] == [match_item(i, rules) for i in items]
    assert all(inputs is not None and inputs[1] for _, inputs in verdicts)  # with summaries
    assert [inputs for _, inputs in verdicts] == [
        inputs for _, inputs in classify_and_prepare(remember(rules), items)
    ]

    # A new version of the rules without 'unvisited-since-2017': the worker compiles
    # it on its first call, and the finding is gone from that call on.
    text = RULES_PATH.read_text(encoding="utf-8")
    start = text.index("  - id: unvisited-since-2017")
    edited = text[:start] + text[text.index("  - id: iic-nfa-rate") :]
    path = tmp_path / "watch-rules.yaml"
    path.write_text(edited, encoding="utf-8")
    reloaded = load_rules(path)

    after = pool.run(classify_and_prepare, remember(reloaded), items)

    def ids(verdicts: list[Verdict]) -> set[str]:
        return {m.finding_id for found, _ in verdicts for m in found}

    assert "unvisited-since-2017" in ids(verdicts)
    assert ids(after) == ids(verdicts) - {"unvisited-since-2017"}


KILLED_PARENT = """
import os, signal, sys
from metwatch.workers import WorkerPool
from watchers.parse import parse_feed
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, realistic_feed, rss

if __name__ == "__main__":
    pool = WorkerPool(1)
    pool.run(parse_feed, realistic_feed(1, seed=0).encode(), "http://x/", "")
    print(pool.pids()[0], flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no shutdown of anything: killed
"""


def test_workers_exit_when_metwatch_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "killed.py"
    script.write_text(KILLED_PARENT)
    run = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert run.returncode == -signal.SIGKILL, run.stderr
    worker = int(run.stdout.split()[0])

    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), f"worker {worker} outlived its killed parent"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (its new parent reaps it)
