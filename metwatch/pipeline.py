"""The orchestrator: the only place where the stages meet I/O.

    claim due sources ─▶ fetch ─▶ parse ─▶ normalise ─▶ store (new only)
        ─▶ classify ─▶ cluster ─▶ store matches + story + outbox (one transaction)

Each source's poll returns a ``PollResult`` whose value is the outcome, None
(not modified) or the ``SourceError``: one broken source never stops a tick.
Delivery is separate (``bot.deliver``): it drains the outbox this writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.stories import (
    DEFAULT_POLICY,
    ClusterPolicy,
    Fingerprint,
    ItemFeatures,
    StoryCandidate,
    assign_story,
    features_of,
    fingerprint,
)
from bot.summary import summarise
from classifiers.match import match_item
from classifiers.rules import RuleSet
from metwatch.errors import FetchError, SourceError
from metwatch.models import (
    Classified,
    Item,
    PollOutcome,
    RawEntry,
    SourceSpec,
    SourceState,
    StoryCoverage,
    StoryMember,
)
from metwatch.ports import Clock
from metwatch.store import SqlStore
from watchers import schedule
from watchers.fetch import Fetcher
from watchers.normalise import normalise
from watchers.parse import parse_feed

log = logging.getLogger(__name__)

AdminAlert = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PollResult:
    source_id: str
    #: The outcome; None when the source answered 304 Not Modified; or the error.
    value: PollOutcome | None | SourceError


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
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.rules = rules
        self.clock = clock
        self.failure_threshold = failure_threshold
        self.max_backoff = max_backoff
        self.alert_admins = alert_admins
        self.cluster_policy = cluster_policy
        self.last_tick: datetime | None = None

    def use_rules(self, rules: RuleSet) -> None:
        """Switch to a new rules version (sources are synced at once)."""
        self.rules = rules
        self.sync_sources()

    def sync_sources(self) -> None:
        now = self.clock()
        self.store.sync_sources(self.rules.sources, lambda s: schedule.first_poll(now, s.interval))

    async def tick(self, *, everything: bool = False) -> list[PollResult]:
        """Poll every due source (or all of them) concurrently, within the fetch limits."""
        now = self.clock()
        if everything:
            self.store.make_all_due(now)
        due = self.store.claim_due_sources(now, limit=1000 if everything else 200)
        specs = {s.id: s for s in self.rules.sources}
        polls = [self.poll(specs[st.id], st) for st in due if st.id in specs]
        results = list(await asyncio.gather(*polls))
        self.last_tick = self.clock()
        return results

    async def poll(self, spec: SourceSpec, state: SourceState) -> PollResult:
        try:
            fetched = await self.fetcher.fetch(
                state.url, etag=state.etag, last_modified=state.last_modified
            )
            now = self.clock()
            if fetched.not_modified:
                self.store.record_success(
                    spec.id, now=now, etag=None, last_modified=None, new_items=0, modified=False,
                    next_poll=schedule.after_success(now, spec.interval, fetched.wait_hint),
                )  # fmt: skip
                return PollResult(spec.id, None)
            parsed = parse_feed(fetched.content, fetched.final_url, fetched.content_type)
            outcome = self.ingest(spec, parsed.entries)
        except SourceError as e:
            e.source_id = spec.id
            await self._record_failure(spec, state, e)
            return PollResult(spec.id, e)
        recovered = self.store.record_success(
            spec.id, now=now, etag=fetched.etag, last_modified=fetched.last_modified,
            new_items=len(outcome.new_items),
            next_poll=schedule.after_success(
                now, spec.interval, _longest(fetched.wait_hint, parsed.refresh_hint)
            ),
        )  # fmt: skip
        log.info(
            "polled %s: %d entries, %d new, %d flagged",
            spec.id, len(parsed.entries), len(outcome.new_items), len(outcome.flagged),
            extra={"event": "poll", "source": spec.id, "new": len(outcome.new_items)},
        )  # fmt: skip
        if recovered:
            await self._alert(f"Source {spec.name} ({spec.id}) has recovered.")
        return PollResult(spec.id, outcome)

    def ingest(self, spec: SourceSpec, entries: Sequence[RawEntry]) -> PollOutcome:
        """normalise -> keep new -> classify -> cluster -> store with outbox rows."""
        now = self.clock()
        items = _unique([normalise(e, spec, now) for e in entries])
        new_items = self.store.add_items(items, now)
        flagged: list[Classified] = []
        for item in new_items:
            classified = Classified(item, match_item(item, self.rules))
            if not classified.flagged:
                continue
            self._file_under_story(classified, now)
            for m in classified.matches:
                log.info(
                    "match %s item=%s source=%s", m.finding_id, item.id, spec.id,
                    extra={"event": "match", "finding": m.finding_id, "item": item.id},
                )  # fmt: skip
            flagged.append(classified)
        return PollOutcome(spec.id, True, tuple(new_items), tuple(flagged))

    def _file_under_story(self, classified: Classified, now: datetime) -> int:
        """cluster: join a recent story about the same event, or start one."""
        features = features_of(classified)
        when = min(classified.item.published or now, now)
        since = when - timedelta(days=self.cluster_policy.window_days)
        candidates = [_candidate(c) for c in self.store.story_coverage(since)]
        decision = assign_story(features, candidates, now=now, policy=self.cluster_policy)
        story_id = self.store.record_flagged(
            classified, decision.story_id, now,
            fingerprint=features.fingerprint.to_json(), copy_of=decision.copy_of,
            summary=summarise(classified.item.text) if decision.story_id is None else (),
        )  # fmt: skip
        log.info(
            "story %s item=%s reason=%s similarity=%.2f findings=%.2f",
            story_id, classified.item.id, decision.reason, decision.similarity,
            decision.finding_jaccard,
        )  # fmt: skip
        return story_id

    async def _record_failure(self, spec: SourceSpec, state: SourceState, e: SourceError) -> None:
        now = self.clock()
        retry_after = e.retry_after if isinstance(e, FetchError) else None
        next_poll = schedule.after_failure(
            now, spec.interval, state.error_count + 1,
            max_backoff=self.max_backoff, retry_after=retry_after,
        )  # fmt: skip
        newly_failing = self.store.record_failure(
            spec.id, now=now, next_poll=next_poll, error=e.message,
            threshold=self.failure_threshold,
        )  # fmt: skip
        log.warning("source %s failed: %s", spec.id, e)
        if newly_failing:
            await self._alert(
                f"Source {spec.name} ({spec.id}) is failing after "
                f"{state.error_count + 1} attempts: {e.message}"
            )

    async def _alert(self, text: str) -> None:
        if self.alert_admins is not None:
            await self.alert_admins(text)


def _longest(*hints: float | None) -> float | None:
    """The longest wait any hint asks for: never poll sooner than the site asks."""
    given = [h for h in hints if h is not None]
    return max(given) if given else None


def _candidate(coverage: StoryCoverage) -> StoryCandidate:
    members = tuple(
        ItemFeatures(m.item_id, _fingerprint(m), m.finding_ids, m.topic_ids, m.published)
        for m in coverage.members
    )
    return StoryCandidate(coverage.story_id, coverage.first_seen, members)


def _fingerprint(member: StoryMember) -> Fingerprint:
    """The stored fingerprint, recomputed when missing or of an older version."""
    if member.fingerprint:
        try:
            return Fingerprint.from_json(member.fingerprint)
        except ValueError:
            pass
    return fingerprint(member.text)


def _unique(items: list[Item]) -> list[Item]:
    """Drop repeats within one feed (duplicate GUIDs): first occurrence wins."""
    seen: set[str] = set()
    kept = []
    for item in items:
        if item.id not in seen:
            seen.add(item.id)
            kept.append(item)
    return kept
