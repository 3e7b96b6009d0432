"""cluster -> store: file a poll's flagged items under stories, also with several instances.

``StoryFiler`` keeps the recent stories in memory (``bot.stories.StoryIndex``),
in step with the store's count of changes to the stories. A decision is made
on the index as it stands and written only if that count is still the one
the index is in step with (the poll's one write raises it, in its transaction);
if another instance filed an item meanwhile, the index reloads the stories
that changed and the decision is made again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.fingerprints import Fingerprint, fingerprint
from bot.prepare import StoryInputs
from bot.stories import (
    DEFAULT_POLICY,
    Assignment,
    ClusterPolicy,
    ItemFeatures,
    StoryCandidate,
    StoryIndex,
    features_of,
)
from metwatch.models import Classified, Item, StoryCoverage, StoryMember
from metwatch.store import SqlStore
from metwatch.store.items import ItemEdit
from metwatch.store.stories import StoriesChanged, StoryFiling

log = logging.getLogger(__name__)

#: Recent stories an item is compared with (the newest by first seen).
STORY_CANDIDATES = 200
#: Decisions made again when another instance changed the stories meanwhile.
CLUSTER_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Filed:
    """What ``StoryFiler.file`` wrote."""

    #: The story each flagged item was filed under, in order (None: not filed,
    #: the same article is stored already).
    stories: list[int | None]
    #: The edited items given new findings, with those findings only.
    added: list[Classified]


class StoryFiler:
    """Files flagged items under stories, with the recent stories held in memory."""

    def __init__(self, store: SqlStore, policy: ClusterPolicy = DEFAULT_POLICY) -> None:
        self.store = store
        self.policy = policy
        self.index = StoryIndex(capacity=STORY_CANDIDATES)
        #: The store's ``story_changes`` the index is in step with; None: bring it
        #: up to date before the next decision.
        self._in_step: int | None = None

    def file(
        self, flagged: Sequence[tuple[Classified, StoryInputs]], now: datetime,
        *, with_items: Sequence[Item] = (), edits: Sequence[ItemEdit] = (),
        added: Sequence[tuple[Classified, Fingerprint | None]] = (),
    ) -> Filed:  # fmt: skip
        """File each flagged item under a recent story about the same event, or a
        new one (with its summary), in order; ``with_items`` (a poll's other new
        items) are stored, ``edits`` (its stored items' new text) written and
        ``added`` (findings that edited items, filed already, state now, with the
        fingerprint of their new text if it is written) given to their stories,
        in the same transaction.

        Optimistic: the decisions are made on the index as it stands, and written
        only if the stories' change count is still the one the index is in step
        with; otherwise the index is brought up to date and they are made again.
        """
        if not flagged and not added:
            self.store.insert_items(with_items, now, edits=edits)  # no change to count
            return Filed([], [])
        # A story older than an item could join tells no one of an edit's findings.
        window = now - timedelta(days=self.policy.window_days)
        for attempt in range(1, CLUSTER_ATTEMPTS + 1):
            seen = self._in_step if self._in_step is not None else self.sync()
            try:
                # After the last attempt, file them anyway: a second story is
                # better than a lost alert.
                decided_on = seen if attempt < CLUSTER_ATTEMPTS else None
                with self.store.filing_stories(now, decided_on=decided_on) as filing:
                    filing.tell_since = window
                    filing.insert_items(with_items, edits=edits)
                    decisions = [self._file_one(filing, c, inputs, now) for c, inputs in flagged]
                    for c, fp in added:
                        filing.add_findings(c, _json(fp))
                break
            except StoriesChanged:
                self._in_step = None
                log.info(
                    "stories changed while filing %d items; deciding again",
                    len(flagged) + len(added),
                )
            except BaseException:
                # The index may hold members whose transaction was rolled back.
                self.index = StoryIndex(capacity=STORY_CANDIDATES)
                self._in_step = None
                raise
        # The write counted itself only if the count was still ``seen``: the index,
        # with these items recorded, is in step with the count the write left. (A
        # forced last attempt was not checked: the next decision reloads.)
        # (A story given findings is held with its old members: reload it.)
        given = filing.given
        self._in_step = filing.changes if filing.changes == seen + 1 and not given else None
        for (c, _), (story_id, decision) in zip(flagged, decisions, strict=True):
            if story_id is None:
                continue  # not filed: the same article is stored already
            log.info(
                "story %s item=%s reason=%s similarity=%.2f findings=%.2f",
                story_id, c.item.id, decision.reason, decision.similarity,
                decision.finding_jaccard,
            )  # fmt: skip
        for c in given:
            log.info(
                "item %s states new findings: %s", c.item.id,
                ", ".join(m.finding_id for m in c.matches),
            )  # fmt: skip
        return Filed([story_id for story_id, _ in decisions], given)

    def _file_one(
        self, filing: StoryFiling, classified: Classified, inputs: StoryInputs, now: datetime
    ) -> tuple[int | None, Assignment]:
        """Decide on the index and write; the index records the item at once, so
        the next item of the same poll can join its story."""
        fp, summary = inputs
        features = features_of(classified, fp)
        when = min(classified.item.published or now, now)
        since = when - timedelta(days=self.policy.window_days)
        decision = self.index.assign(features, now=now, since=since, policy=self.policy)
        story_id = filing.file(
            classified, decision.story_id, fingerprint=fp.to_json(), copy_of=decision.copy_of,
            summary=summary if decision.story_id is None else (),
        )  # fmt: skip
        if story_id is not None:  # None: the article is stored already, nothing written
            self.index.record(story_id, features, first_seen=now)
        return story_id, decision

    def sync(self) -> int:
        """Bring the candidates in memory up to date with the store: members loaded
        only for stories that changed elsewhere (another instance filed an item)
        or that the index has not seen. Returns the ``story_changes`` it is now
        in step with."""
        # The count first: a change landing between the two reads makes the count
        # older than the stories read, so the next write is refused and decided
        # again; the other order could hide that change from the decision.
        changes = self.store.story_changes()
        current = self.store.recent_story_revisions(STORY_CANDIDATES)
        self.index.keep_only(story_id for story_id, _ in current)
        stale = [sid for sid, rev in current if self.index.revision(sid) != rev]
        for coverage in self.store.story_coverage(stale):
            self.index.put(_candidate(coverage), coverage.revision)
        self._in_step = changes
        return changes


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


def _json(fp: Fingerprint | None) -> str | None:
    return fp.to_json() if fp is not None else None
