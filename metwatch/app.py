"""Composition root: Settings -> store, rules, fetcher, pipeline, notifier, bot, scheduler.

``Service`` owns the long-running parts of ``metwatch run``: one APScheduler
job starts polling the due sources (the polls run on in the background, then
drain the outbox), so a slow source delays no other; a second job drains the
outbox on its own (retries); the PTB Application (when a token is set)
answers commands. Without a token, alerts go to the console and a built-in
console subscriber follows every topic.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram.ext import Application

from bot.app import build_application
from bot.deliver import Deliverer, DrainReport
from bot.handlers import BotCommands
from bot.notifier import ConsoleNotifier, TelegramNotifier
from bot.stories import ClusterPolicy
from classifiers.rules import RuleSet, load_rules
from metwatch.health import HealthServer, HealthState, Metrics, serve_health
from metwatch.pipeline import Pipeline, PollResult
from metwatch.ports import Notifier
from metwatch.rules_reload import RulesReloader
from metwatch.settings import Settings
from metwatch.store import SqlStore, open_store
from metwatch.workers import WorkerPool, in_thread
from watchers import schedule
from watchers.crawl_policy import CrawlPolicy
from watchers.fetch import Fetcher, FetchLimits, build_client

log = logging.getLogger(__name__)

#: How long a shutdown waits for sends under way (containers get 10 s after SIGTERM).
SHUTDOWN_DRAIN_SECONDS = 6.0
#: The chat id the console notifier stands for when no token is set.
CONSOLE_CHAT_ID = 0


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_fetch_limits(settings: Settings) -> FetchLimits:
    return FetchLimits(
        max_concurrent=settings.max_concurrent_fetches, per_host=settings.max_fetches_per_host
    )


#: Seconds a site whose article page went unanswered is not asked for other pages
#: (their items keep their feed text): a hung site must not hold every tick.
UNANSWERED_HOLD = 300.0


def build_fetcher(
    settings: Settings, *, public_only: bool = False, limits: FetchLimits | None = None,
    unanswered_hold: float = 0.0,
) -> Fetcher:  # fmt: skip
    """A Fetcher; pass the process's one ``limits`` so that every Fetcher counts against it."""
    client = build_client(
        timeout=settings.http_timeout, user_agent=settings.user_agent, public_only=public_only
    )
    return Fetcher(
        client,
        max_bytes=settings.max_response_bytes,
        limits=limits or build_fetch_limits(settings),
        unanswered_hold=unanswered_hold,
    )


def cluster_policy(settings: Settings) -> ClusterPolicy:
    return ClusterPolicy(
        window_days=settings.cluster_window_days,
        min_similarity=settings.cluster_min_similarity,
        min_shared_findings=settings.cluster_min_shared_findings,
        min_similarity_alone=settings.cluster_min_similarity_alone,
        syndication_jaccard=settings.cluster_syndication_jaccard,
    )


class Service:
    """Everything ``metwatch run`` and ``metwatch poll --once`` need, wired once."""

    def __init__(self, settings: Settings, *, rules: RuleSet | None = None) -> None:
        self.settings = settings
        self.clock = utc_now
        self.rules = rules or load_rules(settings.rules_path)
        self.store: SqlStore = open_store(settings.database_url)
        # One set of limits for both Fetchers: per_host=1 means one request to a
        # host at a time, whether for its feed or for an article on it.
        limits = build_fetch_limits(settings)
        self.fetcher = build_fetcher(settings, limits=limits)
        # URLs found in documents must stay public, every redirect hop included.
        self.document_fetcher = build_fetcher(
            settings, public_only=not settings.allow_private_addresses, limits=limits,
            unanswered_hold=UNANSWERED_HOLD,
        )  # fmt: skip
        self.application: Application | None = None  # type: ignore[type-arg]
        self.notifier: Notifier
        if settings.token:
            self.application = build_application(settings.token, settings.telegram_base_url)
            self.notifier = TelegramNotifier(self.application.bot)
        else:
            self.notifier = ConsoleNotifier()
            self.store.subscribe(CONSOLE_CHAT_ID, [t.id for t in self.rules.topics], self.clock())
        #: Parsing, normalising, classifying, fingerprints and summaries in worker
        #: processes (another core; a hostile feed kills a worker, not metwatch).
        self.workers = (
            WorkerPool(
                settings.worker_processes,
                call_timeout=settings.worker_call_timeout,
                preload=("metwatch.offload",),
            )  # fmt: skip
            if settings.worker_processes
            else None
        )
        self.pipeline = Pipeline(
            self.store, self.fetcher, self.rules, clock=self.clock,
            offload=self.workers.call if self.workers is not None else in_thread,
            failure_threshold=settings.failure_threshold,
            max_backoff=settings.max_backoff_seconds, alert_admins=self.alert_admins,
            allow_private=settings.allow_private_addresses,
            fulltext_min_chars=settings.fulltext_min_chars,
            document_fetcher=self.document_fetcher, cluster_policy=cluster_policy(settings),
            crawl_policy=(CrawlPolicy(self.document_fetcher, settings.user_agent)
                    if settings.obey_robots_txt else None),
        )  # fmt: skip
        self.deliverer = Deliverer(self.store, self.notifier, clock=self.clock, tz=settings.zone)
        self.metrics = Metrics()
        self.health = HealthState(
            started=self.clock(),
            max_poll_age=timedelta(seconds=settings.health_max_poll_age),
            tick_seconds=settings.tick_seconds,
        )
        self.health_server: HealthServer | None = None
        self.commands = BotCommands(
            self.store, lambda: self.pipeline.rules,
            admin_ids=settings.admin_chat_ids, clock=self.clock, reload=self.reload_rules,
            tz=settings.zone,
        )  # fmt: skip
        self.pipeline.sync_sources()
        self.store.set_meta("rules_version", self.rules.version)
        self.reloader = RulesReloader(
            settings.rules_path, self.rules, self._use_rules, self.alert_admins
        )
        #: Ticks' polls still running (``tick``).
        self._batches: set[asyncio.Task[int]] = set()

    async def reload_rules(self) -> str:
        """/reload: re-read the rules file now; one summary line for the admin."""
        before = self.reloader.current.version
        summary = await self.reloader.check()
        if summary is not None:
            return f"Rules reloaded (version {self.reloader.current.version}): {summary}"
        return f"Rules unchanged (version {before}); an invalid file is reported separately."

    def _use_rules(self, rules: RuleSet) -> None:
        self.pipeline.use_rules(rules)
        self.store.set_meta("rules_version", rules.version)

    async def alert_admins(self, text: str) -> None:
        """Tell the configured admins (or the log, without a token)."""
        log.warning("admin alert: %s", text)
        if self.application is None:
            return
        for chat_id in self.settings.admin_chat_ids:
            try:
                await self.notifier.send(chat_id, text, html=False)
            except Exception:  # an alert must never break a poll
                log.exception("could not alert admin chat %s", chat_id)

    async def tick(self) -> None:
        """The scheduler's job: start polling the sources due now, and return.

        The polls run on in the background, so a slow site delays no other
        source: the next tick, a moment later, polls what has come due since
        (a claimed source is not due again until its poll is recorded). The
        pipeline bounds the polls in flight across ticks.
        """
        await self.reloader.check()
        self.health.last_tick = self.clock()
        batch = asyncio.create_task(self.poll_and_deliver(), name="poll-batch")
        self._batches.add(batch)
        batch.add_done_callback(self._batch_done)

    def _batch_done(self, batch: asyncio.Task[int]) -> None:
        self._batches.discard(batch)
        if batch.cancelled():
            return
        error = batch.exception()
        # /healthz: the scheduler ticks, but its polls fail. Only a batch that polled
        # something says they work again (a failed poll leaves its source claimed, so
        # the ticks after it may have nothing to poll).
        if error is not None or batch.result():
            self.health.polls_failing = error is not None
        if error is not None:
            # The database, not a source (a source's errors are recorded on it):
            # its sources are polled again when their claims run out.
            log.error("polling failed: %s", error, exc_info=error)

    async def poll_and_deliver(self, *, everything: bool = False) -> int:
        """Poll the due sources (or all of them), then drain the outbox; returns how
        many sources were polled."""
        with self.metrics.poll_seconds.time():
            results = await self.pipeline.tick(everything=everything)
        for r in results:
            self._count_poll(r)
        if any(r.value is not None and not isinstance(r.value, Exception) for r in results):
            await self.drain()
        return len(results)

    def _count_poll(self, result: PollResult) -> None:
        value = result.value
        if isinstance(value, Exception):
            self.metrics.polls.labels(result.source_id, "failed").inc()
        elif value is None:
            self.metrics.polls.labels(result.source_id, "not_modified").inc()
        else:
            self.metrics.polls.labels(result.source_id, "ok").inc()
            self.metrics.items.labels(result.source_id).inc(len(value.new_items))
            for classified in value.flagged:
                for m in classified.matches:
                    self.metrics.matches.labels(m.finding_id).inc()

    async def drain(self) -> DrainReport:
        """Drain the outbox, recording what happened in the metrics."""
        with self.metrics.delivery_seconds.time():
            report = await self.deliverer.drain()
        for outcome in ("sent", "edited", "retried", "dropped"):
            self.metrics.deliveries.labels(outcome).inc(getattr(report, outcome))
        self.metrics.telegram_429.inc(report.rate_limited)
        for status, n in self.store.outbox_counts().items():
            self.metrics.outbox.labels(status).set(n)
        return report

    def health_checks(self) -> dict[str, bool]:
        return self.health.checks(self.clock(), self.store.last_success(), self.store.ping())

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set: scheduler, deliverer and (with a token) the bot."""
        # Start-up objects live as long as the process: keeping them out of the
        # collector makes every collection, and the one at exit, cheap (faster stop).
        gc.freeze()
        now = self.clock()
        if overdue := self.store.spread_overdue(
            now, lambda interval, late: schedule.after_downtime(now, interval, late)
        ):
            log.info(
                "%d sources overdue after downtime: polled over the next few minutes", overdue
            )
        self.health_server = serve_health(
            self.settings.health_host, self.settings.health_port, self.metrics,
            self.health_checks,
        )  # fmt: skip
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(
            self.tick, "interval", seconds=self.settings.tick_seconds,
            next_run_time=self.clock(), max_instances=1, coalesce=True, id="tick",
        )  # fmt: skip
        scheduler.add_job(
            self.drain, "interval", seconds=self.settings.deliver_seconds,
            max_instances=1, coalesce=True, id="deliver",
        )  # fmt: skip
        if self.application is not None:
            self.commands.install(self.application)
            async with self.application:
                await self.commands.register_commands(self.application)
                await self.application.start()
                assert self.application.updater is not None
                await self.application.updater.start_polling(timeout=10)
                scheduler.start()
                log.info("metwatch running with Telegram; %d sources", len(self.rules.sources))
                await stop.wait()
                await self._wind_down(scheduler)
                await self.application.updater.stop()
                await self.application.stop()
        else:
            scheduler.start()
            log.info("metwatch running (console output); %d sources", len(self.rules.sources))
            await stop.wait()
            await self._wind_down(scheduler)
        await self.close()

    async def _wind_down(self, scheduler: AsyncIOScheduler) -> None:
        """Stop starting jobs, let sends under way finish and be marked, then stop.

        Within the 10 s a container gets after SIGTERM: a poll in progress is
        cancelled (its source is simply polled again next time), a drain is not.
        """
        scheduler.pause()
        # Sends first: a drain under way (a batch's own, too) finishes the sends
        # Telegram has and marks them; cancelled mid-send, it would repeat them.
        await self.deliverer.stop(grace=SHUTDOWN_DRAIN_SECONDS)
        polls = list(self._batches)
        for batch in polls:
            batch.cancel()  # each poll hands its source's claim back
        await asyncio.gather(*polls, return_exceptions=True)
        scheduler.shutdown(wait=False)
        log.info("metwatch stopped")

    async def close(self) -> None:
        if self.health_server is not None:
            self.health_server.shutdown()
            self.health_server.server_close()
        await self.fetcher.client.aclose()
        await self.document_fetcher.client.aclose()
        if self.workers is not None:
            self.workers.close()
        self.store.engine.dispose()
