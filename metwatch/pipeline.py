"""The orchestrator: the only place where the stages meet I/O.

    claim due sources ─▶ fetch ─▶ parse (feed, listing page or sitemap) ─▶ normalise
        ─▶ sort (new, edited) ─▶ full text (new teaser-only items) ─▶ classify ─▶ cluster
        ─▶ store items, edits, matches, story + outbox (one transaction)

Only items new to the store reach the full-text step, so each article page is
fetched at most once; a page that fails leaves the item with its feed text.
A stored item whose text the source edits (a stub written up later) is
classified again on the new text: one not flagged before alerts if it matches
now; one flagged before gives its story the findings it states now and did not
before (their followers are sent the story, whoever had it sees it edited).

Each source's poll returns a ``PollResult`` whose value is the outcome, None
(not modified) or the ``SourceError``: one broken source never stops a tick.
Delivery is separate (``bot.deliver``): it drains the outbox this writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from bot.prepare import StoryInputs
from bot.stories import (
    DEFAULT_POLICY,
    ClusterPolicy,
)
from classifiers.rules import RuleSet
from metwatch.edits import Edit, JudgedCopies, edits_of, reclassified, split_flagged
from metwatch.errors import SourceError, StoreError
from metwatch.filing import StoryFiler
from metwatch.models import (
    Classified,
    Item,
    NewItem,
    PollOutcome,
    RawEntry,
    SourceSpec,
    SourceState,
)
from metwatch.not_modified import NotModifiedPolls
from metwatch.offload import Verdict, classify_and_prepare, classify_here, remember
from metwatch.ports import Clock
from metwatch.reading import SourceReader
from metwatch.source_health import HealthRecorder, poll_gap, unexpected_error
from metwatch.store import SqlStore
from metwatch.store.items import SortedItems
from metwatch.workers import Offload, WorkerDied, WorkerTimedOut, in_thread
from watchers import schedule
from watchers.crawl_policy import CrawlPolicy
from watchers.fastparse import FeedParser
from watchers.fetch import Fetcher
from watchers.fulltext import ArticleTexts
from watchers.gaps import recovered_alert
from watchers.normalise import normalise

log = logging.getLogger(__name__)

AdminAlert = Callable[[str], Awaitable[None]]
T = TypeVar("T")

#: Polls (fetch, parse, store) in progress at once, over all the ticks running:
#: this bounds the parsed feeds held in memory while they wait for their turn to
#: be stored. At least twice the fetch limit, so that limit, not this one, paces
#: fetching.
MAX_POLLS_IN_FLIGHT = 16


@dataclass(frozen=True, slots=True)
class PollResult:
    source_id: str
    #: The outcome; None when the source answered 304 Not Modified; or the error.
    value: PollOutcome | None | SourceError
    #: For a 304: when to poll next (the tick records all its 304s in one write).
    next_poll: datetime | None = None


class Pipeline:
    """Polls sources and turns new items into stories and outbox rows."""

    def __init__(
        self,
        store: SqlStore,
        fetcher: Fetcher,
        rules: RuleSet,
        *,
        clock: Clock,
        failure_threshold: int = 5,
        max_backoff: int = 6 * 3600,
        alert_admins: AdminAlert | None = None,
        cluster_policy: ClusterPolicy = DEFAULT_POLICY,
        allow_private: bool = False,
        fulltext_min_chars: int = 0,
        document_fetcher: Fetcher | None = None,
        feed_parser: FeedParser | None = None,
        offload: Offload = in_thread,
        crawl_policy: CrawlPolicy | None = None,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        #: For URLs found in documents (articles, child sitemaps), not in the rules file.
        self.document_fetcher = document_fetcher or fetcher
        self.rules = rules
        self.clock = clock
        self.alert_admins = alert_admins
        #: A poll's failure (backoff, failing), move or gap, recorded on its source.
        self.health = HealthRecorder(
            store, failure_threshold=failure_threshold, max_backoff=max_backoff
        )
        self.last_tick: datetime | None = None
        self._store_lock = asyncio.Lock()
        self._in_flight: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        #: Sources whose poll is under way (or waiting for its turn), over all ticks.
        self._polling: set[str] = set()
        #: Where the pure CPU-heavy stages run: a thread here, or a worker process.
        self.offload = offload
        #: parse (or pick links) -> normalise, by the source's kind.
        self.reader = SourceReader(
            self.document_fetcher, feed_parser=feed_parser, offload=offload,
            allow_private=allow_private, fulltext_min_chars=fulltext_min_chars,
        )  # fmt: skip
        #: New teaser-only items -> their article's main text (``crawl_policy``:
        #: robots.txt, Crawl-delay and sites' Retry-After; None: not asked).
        self.full_text = ArticleTexts(
            self.document_fetcher, allow_private=allow_private, policy=crawl_policy
        )
        #: cluster -> store, with the recent stories in memory.
        self.stories = StoryFiler(store, cluster_policy)
        #: Copies of stored articles in other feeds, judged already.
        self.copies = JudgedCopies()

    def use_rules(self, rules: RuleSet) -> None:
        """Switch to a new rules version (sources are synced at once)."""
        self.rules = rules
        self.sync_sources()

    def sync_sources(self) -> None:
        now = self.clock()
        self.store.sync_sources(self.rules.sources, lambda s: schedule.first_poll(now, s.interval))

    async def tick(
        self, *, everything: bool = False, limit: int | None = None
    ) -> list[PollResult]:
        """Poll every due source (or all of them) concurrently, within the fetch limits;
        at most ``limit`` sources (the rest are due at the next tick)."""
        now = self.clock()
        if everything:
            self.store.make_all_due(now)
        limit = limit or (1000 if everything else 200)
        claimed = self.store.claim_due_sources(now, limit=limit)
        specs = {s.id: s for s in self.rules.sources}
        # A source whose poll is still under way here (queued past its lease while
        # every site was slow) is not polled twice: that poll records it.
        due = [st for st in claimed if st.id in specs and st.id not in self._polling]
        in_flight = self._polls_in_flight()
        answered = NotModifiedPolls(self.store, specs, self.clock)

        started: set[str] = set()

        async def bounded(spec: SourceSpec, state: SourceState) -> PollResult:
            started.add(spec.id)
            self._polling.add(spec.id)
            polling = False
            try:
                async with in_flight:  # parsed feeds waiting to be stored stay few
                    polling = True
                    result = await self.poll(spec, state)
            except asyncio.CancelledError:
                if not polling:  # still waiting for its turn: hand its claim back too
                    self.store.release_claim(spec.id, self.clock())
                raise
            finally:
                self._polling.discard(spec.id)
            if result.next_poll is not None:
                answered.add(result.source_id, result.next_poll)
            return result

        polls = [asyncio.ensure_future(bounded(specs[st.id], st)) for st in due]
        try:
            results = list(await asyncio.gather(*polls))
        except BaseException:
            # Cancelled (a shutdown), or a poll met the database's error: stop the
            # others too, rather than leave them running untracked, and hand back
            # the claims of those that never started (a task cancelled before its
            # first step runs none of ``bounded``).
            for poll in polls:
                poll.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
            for st in due:
                if st.id not in started:
                    self.store.release_claim(st.id, self.clock())
            raise
        finally:
            # Also when the tick is cancelled by a shutdown, so the sources that
            # answered are not left claimed until their lease runs out.
            answered.flush()
        for source_id in answered.recovered:
            spec = specs[source_id]
            await self._alert(recovered_alert(spec.name, spec.id, None))  # a 304: nothing new
        self.last_tick = self.clock()
        return results

    def _polls_in_flight(self) -> asyncio.Semaphore:
        """The bound on polls in flight, shared by the ticks running at once (one
        per event loop: a semaphore belongs to the loop it first waits in)."""
        loop = asyncio.get_running_loop()
        if self._in_flight is None or self._in_flight[0] is not loop:
            limit = max(MAX_POLLS_IN_FLIGHT, 2 * self.fetcher.max_concurrent)
            self._in_flight = (loop, asyncio.Semaphore(limit))
        return self._in_flight[1]

    async def poll(self, spec: SourceSpec, state: SourceState) -> PollResult:
        try:
            fetched = await self.fetcher.fetch(
                state.url, etag=state.etag, last_modified=state.last_modified
            )
            now = self.clock()
            if fetched.not_modified:
                await self._alert(self.health.record_move(spec, fetched.moved_to))
                # The feed's own ttl, from its last body, still stands.
                wait = _longest(fetched.wait_hint, state.refresh_hint)
                next_poll = schedule.after_success(now, spec.interval, wait)
                return PollResult(spec.id, None, next_poll)
            read = await self.reader.read(spec, fetched, now)
            found = await self._off_loop(self._sort, read.items)
            wait_hint = _longest(fetched.wait_hint, read.refresh_hint)
            gap = await poll_gap(
                spec, state, read.items, found.new, now, wait_hint,
                lambda: self._off_loop(self.store.has_items_from, spec.id),
            )  # fmt: skip
            new_items = await self.full_text.fill(found.new, read.teasers)
            rules = self.rules  # (what _classify uses: no await in between)
            edits = edits_of(found, read.teasers)
            edits += self.copies.to_judge(found, read.teasers, rules)
            classified, prepared = await self._classify(
                [*new_items, *reclassified(edits)], fetched.final_url
            )
            outcome = await self._off_loop(
                self._store_classified, spec, classified, prepared, now, edits
            )
            self.copies.judged(edits, rules)
        except asyncio.CancelledError:
            # Shutting down mid-poll: hand the claim back so a restart polls it at once.
            # Its items are stored or not, whole (one transaction; a write already in
            # its thread finishes): either way nothing is lost or repeated.
            self.store.release_claim(spec.id, self.clock())
            raise
        except SourceError as e:
            e.source_id = spec.id
            await self._alert(self.health.record_failure(spec, state, e, self.clock()))
            return PollResult(spec.id, e)
        except StoreError:
            raise  # the database, not this source: nothing to record it in
        except Exception as e:  # a bug met by this source's data
            # Recorded on the source like any failure (backoff, failing alert), so the
            # rest of the tick is polled and recorded, and this source keeps its
            # Retry-After instead of waiting out its claim's lease.
            log.exception("unexpected error polling %s", spec.id)
            error = SourceError(unexpected_error(e), url=state.url, source_id=spec.id)
            await self._alert(self.health.record_failure(spec, state, error, self.clock()))
            return PollResult(spec.id, error)
        new = len(outcome.new_items)
        recovered = self.health.record_success(spec, fetched, read, new, now, wait_hint)
        log.info(
            "polled %s: %d entries, %d new, %d flagged",
            spec.id, len(read.items), len(outcome.new_items), len(outcome.flagged),
            extra={"event": "poll", "source": spec.id, "new": len(outcome.new_items)},
        )  # fmt: skip
        await self._alert(self.health.record_move(spec, fetched.moved_to))
        if recovered:
            await self._alert(recovered_alert(spec.name, spec.id, gap))
        if gap is not None:
            await self._alert(self.health.record_gap(spec, gap, now))
        return PollResult(spec.id, outcome)

    async def _off_loop(self, stage: Callable[..., T], *args: object) -> T:
        """Run a storing stage in a worker thread, one at a time.

        Off the loop, so fetches in flight are not starved into timeouts by CPU
        work; one at a time, so clustering sees every story filed before it.
        """
        async with self._store_lock:
            return await asyncio.to_thread(stage, *args)

    def ingest(self, spec: SourceSpec, entries: Sequence[RawEntry]) -> PollOutcome:
        """normalise -> sort -> classify -> cluster -> store with outbox rows,
        all in this process and thread (replays and backtests).

        No network: the full-text step is only part of ``poll``.
        """
        now = self.clock()
        found = self._sort([normalise(e, spec, now) for e in entries])
        rules = self.rules
        edits = edits_of(found, {}) + self.copies.to_judge(found, {}, rules)
        to_classify = [*found.new, *reclassified(edits)]
        verdicts = classify_and_prepare(remember(rules), to_classify)
        outcome = self._store_classified(spec, *_classified(to_classify, verdicts), now, edits)
        self.copies.judged(edits, rules)
        return outcome

    def _sort(self, items: Sequence[Item]) -> SortedItems:
        """The items new to the store, repeats dropped, and the stored ones edited
        (nothing written yet: an item and an edit are stored with their
        classification, so a crash in between cannot lose an alert)."""
        return self.store.sort_items(_unique(items))

    async def _classify(
        self, items: Sequence[Item], url: str
    ) -> tuple[list[Classified], list[StoryInputs]]:
        """classify -> fingerprints and summaries of the flagged items (of ``url``'s
        poll): pure, so no store lock, and in a worker process when there is one."""
        if not items:
            return [], []
        rules = self.rules
        try:
            verdicts = await self.offload(classify_and_prepare, remember(rules), items)
        except WorkerTimedOut as e:
            # Not classified here: that would hold the event loop as long. The poll
            # fails with nothing stored, so nothing is lost: the next one (after the
            # backoff) tries again, and the failing alert tells the admins.
            raise SourceError(
                f"classifying {len(items)} item{'' if len(items) == 1 else 's'} took "
                f"longer than {e.seconds:g} s, so it was stopped; see the log", url=url,
            ) from e  # fmt: skip
        except WorkerDied:
            # One of these texts killed a worker: classify here, as metwatch did
            # before it had workers, and send the stories without a summary
            # rather than not at all.
            log.exception("classifying %d items killed a worker; classified here", len(items))
            return classify_here(items, rules)
        return _classified(items, verdicts)

    def _store_classified(
        self,
        spec: SourceSpec,
        classified: Sequence[Classified],
        prepared: Sequence[StoryInputs],
        now: datetime,
        edits: Sequence[Edit] = (),
    ) -> PollOutcome:
        """cluster -> store with outbox rows, for classified items new to the store
        or edited (``edits``: every stored item whose text changed; those of them
        classified here were flagged before or not)."""
        split = split_flagged(classified, prepared, edits)
        edited, to_file = split.edited, split.to_file
        unflagged = [c.item for c in classified if not c.flagged and c.item.id not in edited]
        # One transaction: the edits, the flagged items with their matches, stories
        # and outbox rows, and the other new items (_sort sorted them: no second look).
        filed = self.stories.file(
            to_file, now, with_items=unflagged, edits=split.written, added=split.added
        )
        # A flagged item not filed (None) is an article stored already: not new.
        filed_in = zip(to_file, filed.stories, strict=True)
        skipped = {c.item.id for (c, _), story in filed_in if story is None}
        reported_flagged = [c for c, _ in to_file if c.item.id not in skipped] + filed.added
        for c in reported_flagged:
            for m in c.matches:
                log.info(
                    "match %s item=%s source=%s", m.finding_id, c.item.id, spec.id,
                    extra={"event": "match", "finding": m.finding_id, "item": c.item.id},
                )  # fmt: skip
        reported = tuple(NewItem(c.item.id, c.item.title, c.item.url) for c in classified
                         if c.item.id not in skipped and c.item.id not in edited)  # fmt: skip
        return PollOutcome(spec.id, True, reported, tuple(reported_flagged))

    async def _alert(self, text: str | None) -> None:
        """Tell the admins ``text``; None: there is nothing to tell."""
        if text is not None and self.alert_admins is not None:
            await self.alert_admins(text)


def _longest(*hints: float | None) -> float | None:
    """The longest wait any hint asks for: never poll sooner than the site asks."""
    given = [h for h in hints if h is not None]
    return max(given) if given else None


def _classified(
    items: Sequence[Item], verdicts: Sequence[Verdict]
) -> tuple[list[Classified], list[StoryInputs]]:
    """Items with their verdicts, and the story inputs of the flagged ones."""
    classified = [Classified(i, found) for i, (found, _) in zip(items, verdicts, strict=True)]
    return classified, [inputs for _, inputs in verdicts if inputs is not None]


def _unique(items: Sequence[Item]) -> list[Item]:
    """Drop repeats within one feed (duplicate GUIDs): first occurrence wins.

    Repeats of a link under another id are the store's to drop (``sort_new``),
    as it knows which of them is stored already and may have been edited.
    """
    seen: set[str] = set()
    kept = []
    for item in items:
        if item.id not in seen:
            seen.add(item.id)
            kept.append(item)
    return kept
