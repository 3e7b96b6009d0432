"""Fan-out benchmark: one story to many subscribers under Telegram's flood limits.

The Telegram side
-----------------
A separate **process** (``multiprocessing``, spawn) runs the test suite's
``BotApiEmulator(enforce_limits=True)``: 30 sendMessage/s overall in any rolling second,
1/s per private chat, 20/min per group; a call over a limit answers 429 with
``retry_after`` as Telegram does. It records the wall-clock time of every accepted
sendMessage and counts the 429s. Being another process, its CPU does not compete with
metwatch for the GIL.

Part 1: throughput
------------------
``--subscribers`` private chats (default 10,000; ``--quick`` 1,000) follow the topic in a
real SQLite store (bulk-inserted; setup is not timed). One flagged item is recorded with
``SqlStore.record_flagged``, which writes the story and one outbox row per chat in one
transaction. Then the real ``bot.deliver.Deliverer`` drains it through
``bot.notifier.TelegramNotifier`` over the PTB ``Application`` that
``bot.app.build_application`` builds (bot.ratelimit.RollingWindowLimiter), exactly as
``metwatch run`` does (``--limiter aio`` measures PTB's AIORateLimiter instead): a
drain, and when it returns with rows left (after a 429 the drain stops early and the
chat waits ``retry_after``), the next one on the deliver job's
``--deliver-seconds`` grid (2 s, the default). Printed:

- achieved messages/s (first to last accepted message, as the emulator saw them), as a
  fraction of 30/s (target >= 0.9), and end to end (drain start to the last message);
- the most messages accepted in any rolling second;
- 429s the emulator answered (target 0) and how many drains it took;
- peak RSS of the metwatch process and of the emulator process.

Part 2: latency
---------------
The real ``metwatch.app.Service`` (``run``) with default tick (5 s) and deliver (2 s)
intervals, one source with ``--poll-interval`` (default 60 s) on a local feed server,
``--latency-subscribers`` chats (default 100: the first message does not depend on the
fan-out size, and a small fan-out keeps samples independent). Each sample starts a fresh
service on a fresh database serving an empty feed, waits for a poll of the feed, waits a
uniformly random part of the poll interval, then publishes a flagged item: the moment "the
item appears in a served feed" falls at a random point of the source's schedule. Printed
per sample and as a summary: latency to the first subscriber's message, split into the
wait for the next poll and the processing after it (fetch, classify, store, first send).

Usage::

    .venv/bin/python bench/fanout.py                   # 10,000 subscribers, 5 samples (~13 min)
    .venv/bin/python bench/fanout.py --quick           # 1,000 subscribers, 2 samples (~3.5 min)
    .venv/bin/python bench/fanout.py --subscribers 3000 --latency-samples 0
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import Session  # noqa: E402
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder  # noqa: E402

from bot.app import build_application  # noqa: E402
from bot.deliver import Deliverer, DrainReport  # noqa: E402
from bot.notifier import TelegramNotifier  # noqa: E402
from bot.ratelimit import RollingWindowLimiter  # noqa: E402
from metwatch.app import Service, utc_now  # noqa: E402
from metwatch.models import Classified, Evidence, Item, Match  # noqa: E402
from metwatch.settings import load_settings  # noqa: E402
from metwatch.store import SqlStore, open_store  # noqa: E402
from metwatch.store.tables import SubscriberRow, SubscriptionRow  # noqa: E402
from tests.rules_for_tests import write_rules  # noqa: E402
from tests.support.bot_api import BotApiEmulator  # noqa: E402
from tests.support.feed_server import FeedServer  # noqa: E402
from tests.support.feeds import FeedItem, rss  # noqa: E402

LIMIT_PER_SECOND = 30
TOPIC = "met-inspection"


# -- the emulator process ---------------------------------------------------------------


class TimedEmulator(BotApiEmulator):
    """The emulator, recording when (wall clock) each sendMessage was accepted."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.accepted: list[float] = []

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        result = super()._send_message(params)  # raises on 429: not accepted
        self.accepted.append(time.time())
        return result


def _emulator_main(conn: Connection) -> None:
    with TimedEmulator(enforce_limits=True) as emu:
        conn.send((emu.base_url, emu.token))
        while True:
            command, arg = conn.recv()
            if command == "accepted":  # timestamps from index ``arg`` on
                with emu._cond:
                    conn.send(list(emu.accepted[arg:]))
            elif command == "stats":
                conn.send(
                    {
                        "too_many_requests": emu.too_many_requests,
                        "accepted": len(emu.accepted),
                        "errors": len(emu.errors),
                        "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                    }
                )
            elif command == "reset":
                emu.reset()
                with emu._cond:
                    emu.accepted.clear()
                conn.send(None)
            else:
                conn.send(None)
                return


@dataclass
class Telegram:
    """The parent's handle on the emulator process."""

    conn: Connection
    process: multiprocessing.process.BaseProcess
    base_url: str
    token: str

    def ask(self, command: str, arg: object = None) -> Any:
        self.conn.send((command, arg))
        return self.conn.recv()

    def close(self) -> None:
        self.ask("stop")
        self.process.join(10)


def start_telegram() -> Telegram:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_emulator_main, args=(child,), daemon=True)
    process.start()
    base_url, token = parent.recv()
    return Telegram(parent, process, base_url, token)


# -- helpers ------------------------------------------------------------------------------


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def subscribe_many(store: SqlStore, chats: range) -> None:
    """Bulk version of ``store.subscribe`` (one transaction; setup, not measured)."""
    now = datetime.now(UTC)
    with Session(store.engine) as s:
        s.add_all(SubscriberRow(chat_id=c, chat_type="private", created_at=now) for c in chats)
        s.add_all(SubscriptionRow(chat_id=c, target=TOPIC) for c in chats)
        s.commit()


async def until(condition: Callable[[], bool], every: float = 0.05) -> None:
    """Wait for state that another thread or process changes (no event to await)."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(every)


def busiest_second(stamps: list[float]) -> int:
    best, start = 0, 0
    for end, t in enumerate(stamps):
        while t - stamps[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- the proposed limiter -----------------------------------------------------------------


def aio_application(token: str, base_url: str) -> Application:  # type: ignore[type-arg]
    """The Application with PTB's AIORateLimiter, which metwatch used before."""
    return (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .rate_limiter(AIORateLimiter(max_retries=0))
        .concurrent_updates(False)
        .build()
    )


def window_application(token: str, base_url: str, *, count_from_answer: bool) -> Application:  # type: ignore[type-arg]
    """``bot.app.build_application`` with the rolling-window limiter instead."""
    return (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .rate_limiter(RollingWindowLimiter(count_from_answer=count_from_answer))
        .concurrent_updates(False)
        .build()
    )


# -- part 1: throughput -------------------------------------------------------------------


@dataclass
class Throughput:
    subscribers: int
    accepted: int = 0
    seconds_active: float = 0.0
    seconds_total: float = 0.0
    too_many_requests: int = 0
    drains: int = 0
    busiest_second: int = 0
    report: DrainReport = field(default_factory=DrainReport)
    rss_mib: float = 0.0
    emulator_rss_mib: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return (self.accepted - 1) / self.seconds_active if self.seconds_active else 0.0


async def throughput(
    telegram: Telegram, n: int, folder: Path, deliver_seconds: float, limiter: str
) -> Throughput:
    store = open_store(f"sqlite:///{folder / 'fanout.db'}")
    subscribe_many(store, range(1, n + 1))
    now = datetime.now(UTC)
    item = Item(
        "bench-item", "bench", "Bench News", "https://news.example.com/met-report",
        "Met Police failing to manage sex offenders, inspectorate finds", "",
        "Too many visits to registered sex offenders were announced in advance.", now, "h",
    )  # fmt: skip
    evidence = (Evidence(item.body, 0, len(item.body)),)
    match = Match("announced-visits", TOPIC, "Visits announced in advance", 1.0, evidence)
    store.add_items([item], now)
    store.record_flagged(Classified(item, (match,)), None, now)
    result = Throughput(n)

    application = (
        build_application(telegram.token, telegram.base_url)
        if limiter == "window"
        else aio_application(telegram.token, telegram.base_url)
        if limiter == "aio"
        else window_application(telegram.token, telegram.base_url, count_from_answer=False)
    )
    async with application:
        deliverer = Deliverer(store, TelegramNotifier(application.bot), clock=utc_now)
        began, cpu = time.time(), time.process_time()
        while True:
            report = await deliverer.drain()
            result.drains += 1
            for name in ("sent", "edited", "retried", "dropped", "rate_limited"):
                setattr(result.report, name, getattr(result.report, name) + getattr(report, name))
            left = store.outbox_counts().get("pending", 0)
            print(
                f"  drain {result.drains}: sent {report.sent}, 429s {report.rate_limited}, "
                f"{left} pending, {time.time() - began:.1f} s",
                flush=True,
            )
            if left == 0:
                break
            # The deliver job runs on a fixed grid (APScheduler interval, coalesced).
            elapsed = time.time() - began
            await asyncio.sleep(deliver_seconds - elapsed % deliver_seconds)
        ended, cpu = time.time(), time.process_time() - cpu
    store.engine.dispose()
    result.cpu_seconds = cpu

    stamps = sorted(telegram.ask("accepted", 0))
    stats = telegram.ask("stats")
    result.accepted = len(stamps)
    result.seconds_active = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    result.seconds_total = ended - began
    result.too_many_requests = stats["too_many_requests"]
    result.busiest_second = busiest_second(stamps)
    result.rss_mib = rss_mib()
    result.emulator_rss_mib = stats["rss_kib"] / 1024
    return result


# -- part 2: latency ----------------------------------------------------------------------


@dataclass
class Sample:
    phase: float  # seconds after a poll at which the item appeared
    latency: float  # item appears -> first subscriber's message accepted
    wait: float  # item appears -> the poll that fetched it
    processing: float  # that poll -> first message
    article_fetched: bool  # the pipeline fetched the item's page for its full text


ARTICLE = """<!doctype html><html><head><title>Met Police failing to manage sex offenders</title>
</head><body><article><h1>Met Police failing to manage sex offenders, inspectorate finds</h1>
<p>The Metropolitan Police is failing to manage sex offenders, the police inspectorate has
found in a report published on Thursday.</p>
<p>Too many visits to registered sex offenders were announced in advance, inspectors said,
which let offenders hide evidence of breaches before officers arrived.</p>
<p>The force said it accepted the findings and had already changed how visits are planned.</p>
</article></body></html>"""


def _flagged_item(n: int, link: str) -> FeedItem:
    return FeedItem(
        title=f"Met Police failing to manage sex offenders, inspectorate finds ({n})",
        link=link,
        guid=f"bench-report-{n}",
        description=(
            "<p>The Metropolitan Police is failing to manage sex offenders, the police "
            "inspectorate has found.</p><p>Too many visits to registered sex offenders were "
            "announced in advance, inspectors said.</p>"
        ),
        published=datetime.now(UTC),
    )


async def latency_sample(
    telegram: Telegram, n: int, interval: int, subscribers: int, folder: Path,
    rng: random.Random,
) -> Sample:  # fmt: skip
    telegram.ask("reset")
    db_url = f"sqlite:///{folder / f'latency-{n}.db'}"
    store = open_store(db_url)
    subscribe_many(store, range(1, subscribers + 1))
    store.engine.dispose()
    offset = time.time() - time.monotonic()  # FeedServer stamps requests with monotonic()
    with FeedServer() as feeds:
        feeds.serve("/feed.xml", rss([]))
        # The item is short, so its page is fetched for the full text, as in production.
        feeds.serve(f"/article-{n}", ARTICLE, content_type="text/html; charset=utf-8")
        rules = write_rules(
            folder, [{"id": "bench", "name": "Bench News", "url": feeds.url("/feed.xml"),
                      "interval": interval}],
        )  # fmt: skip
        settings = load_settings(
            telegram_token=telegram.token, telegram_base_url=telegram.base_url,
            database_url=db_url, rules_path=rules, health_port=0,
            allow_private_addresses=True,  # the article page is on this machine
        )  # fmt: skip
        service = Service(settings)
        stop = asyncio.Event()
        running = asyncio.create_task(service.run(stop))
        try:
            await until(lambda: feeds.hits("/feed.xml") > 0)  # first poll: <= interval/10 + tick
            polled = feeds.requests("/feed.xml")[-1].time + offset
            phase = rng.uniform(0, interval)
            await asyncio.sleep(max(0.0, polled + phase - time.time()))
            feeds.serve("/feed.xml", rss([_flagged_item(n, feeds.url(f"/article-{n}"))]))
            appeared = time.time()
            deadline = appeared + interval * 1.2 + 30
            first: float | None = None
            while first is None:
                if time.time() > deadline:
                    raise RuntimeError("no message within 1.2 x the poll interval + 30 s")
                await asyncio.sleep(0.05)
                stamps = telegram.ask("accepted", 0)
                first = min(stamps) if stamps else None
            fetch = min(
                r.time + offset for r in feeds.requests("/feed.xml") if r.time + offset > appeared
            )
        finally:
            stop.set()
            await running
        article_hits = feeds.hits(f"/article-{n}")
    return Sample(
        phase=appeared - polled,
        latency=first - appeared,
        wait=fetch - appeared,
        processing=first - fetch,
        article_fetched=article_hits > 0,
    )


# -- main -----------------------------------------------------------------------------------


def _print_throughput(t: Throughput) -> None:
    fraction = t.rate / LIMIT_PER_SECOND
    end_to_end = t.accepted / t.seconds_total if t.seconds_total else 0.0
    print(f"\nThroughput: 1 story -> {t.subscribers:,} subscribers")
    print(f"  messages accepted        {t.accepted:,} (sent {t.report.sent:,})")
    print(
        f"  achieved rate            {t.rate:.2f} msg/s = {fraction:.3f} of {LIMIT_PER_SECOND}/s"
        f"   target >= 0.9  {'ok' if fraction >= 0.9 else 'MISS'}"
    )
    print(f"  end to end               {end_to_end:.2f} msg/s over {t.seconds_total:.1f} s")
    print(f"  busiest rolling second   {t.busiest_second} messages")
    print(
        f"  429s received            {t.too_many_requests}"
        f"   target 0  {'ok' if t.too_many_requests == 0 else 'MISS'}"
        f"   (drains: {t.drains}; deliveries postponed by 429: {t.report.rate_limited})"
    )
    print(
        f"  metwatch CPU             {t.cpu_seconds:.1f} s = "
        f"{1000 * t.cpu_seconds / max(t.accepted, 1):.1f} ms per message "
        f"({t.cpu_seconds / t.seconds_total:.0%} of a core)"
    )
    print(f"  peak RSS                 metwatch {t.rss_mib:.0f} MiB, emulator "
          f"{t.emulator_rss_mib:.0f} MiB")  # fmt: skip


def _print_latency(samples: list[Sample], interval: int, tick: float) -> None:
    print(f"\nLatency: item appears in the feed -> first subscriber's message "
          f"(poll interval {interval} s, tick {tick:g} s)")  # fmt: skip
    print("  appeared after poll   latency   wait for poll   processing   article page fetched")
    for s in samples:
        print(
            f"  {s.phase:17.1f} s {s.latency:8.1f} s {s.wait:13.1f} s {s.processing:10.2f} s"
            f"   {'yes' if s.article_fetched else 'no'}"
        )
    if not samples:
        return
    lat = [s.latency for s in samples]
    worst = max(lat)
    target = interval + 2
    print(
        f"  mean {statistics.fmean(lat):.1f} s, max {worst:.1f} s, processing "
        f"{statistics.fmean(s.processing for s in samples):.2f} s on average; target <= "
        f"{target} s  {'ok' if worst <= target else 'MISS'}"
    )
    print(
        f"  schedule bound: polls are {interval} s x (1 + U(0, 0.1)) apart, rounded up to the "
        f"next {tick:g} s tick, so an item published right after a poll waits up to "
        f"{interval * 1.1 + tick:.0f} s (+ processing)"
    )


async def main_async(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        filename=args.log,
        filemode="w",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    telegram = start_telegram()
    try:
        with tempfile.TemporaryDirectory(prefix="metwatch-fanout-") as tmp:
            folder = Path(tmp)
            if args.subscribers:
                seconds = args.subscribers / LIMIT_PER_SECOND
                print(
                    f"Fan-out to {args.subscribers:,} subscribers (~{seconds:.0f} s)", flush=True
                )
                result = await throughput(
                    telegram, args.subscribers, folder, args.deliver_seconds, args.limiter
                )
                _print_throughput(result)
            samples: list[Sample] = []
            rng = random.Random(args.seed)
            for n in range(args.latency_samples):
                most = args.poll_interval * 1.1 + 12
                print(f"\nLatency sample {n + 1}/{args.latency_samples} (<= ~{most:.0f} s)")
                sample = await latency_sample(
                    telegram, n, args.poll_interval, args.latency_subscribers, folder, rng
                )
                print(f"  appeared {sample.phase:.1f} s after a poll: first message after "
                      f"{sample.latency:.1f} s", flush=True)  # fmt: skip
                samples.append(sample)
            if args.latency_samples:
                _print_latency(samples, args.poll_interval, 5.0)
    finally:
        telegram.close()
    print(f"\nlog (warnings and errors): {args.log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1,000 subscribers, 2 samples")
    parser.add_argument("--latency-samples", type=int, default=None, help="default 5 (2 quick)")
    parser.add_argument("--latency-subscribers", type=int, default=100)
    parser.add_argument("--poll-interval", type=int, default=60)
    parser.add_argument("--deliver-seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--limiter", choices=["window", "aio", "window-sent"], default="window",
        help="window: bot.app.build_application (the rolling-window limiter metwatch runs, "
        "counting sends until 1 s after their answer); aio: PTB's AIORateLimiter "
        "(max_retries=0), for comparison; window-sent: counting from the send, with a 50 ms "
        "margin (throughput part only)",
    )  # fmt: skip
    parser.add_argument("--log", default=str(Path(tempfile.gettempdir()) / "fanout-bench.log"))
    args = parser.parse_args()
    if args.quick:
        args.subscribers = 1_000
    if args.latency_samples is None:
        args.latency_samples = 2 if args.quick else 5
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
