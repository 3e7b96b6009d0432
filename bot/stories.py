"""Clustering: decide which story a flagged item belongs to. Pure.

A *story* is the coverage of one event (one report, one announcement) across
outlets. Each flagged item either joins one recent story or starts a new one.
This module makes that decision from precomputed features (``bot.fingerprints``);
it does no I/O and reads no clock (``now`` is passed in). ``StoryIndex`` holds the
recent stories in memory with what every decision needs computed once; the caller
keeps it in step with the store.

Method
------
An item joins a candidate story only when all of these hold:

1. **Same topic**: they share a topic id (another force, another topic: never).
2. **Same time**: the item's time (published, else ``now``; never later than
   ``now``) is within ``window_days`` of the story's earliest member. The
   window is anchored to the first coverage so a running subject cannot chain
   into one endless story: an inspection published a month later is new.
3. **Same event**, by one of:

   a. *syndicated*: shingle resemblance with one member reaches
      ``syndication_jaccard`` (0.8), i.e. the same copy on another site;
   b. *shared findings*: at least ``min_shared_findings`` (2) of its specific
      findings are already in the story and the centroid cosine reaches
      ``min_similarity`` (0.3). Two independent tracked facts agreeing is
      the strong evidence; the text check keeps an unrelated article that
      merely repeats them out;
   c. *similar text*: centroid cosine reaches ``min_similarity_alone`` (0.7),
      a rewrite of the same copy, for items that state fewer findings.

When several stories qualify, the syndicated one wins, then the highest
cosine + finding-Jaccard, then the oldest story (lowest id). Bag-of-words
similarity cannot tell two inspections written to the same template apart:
a Greater Manchester inspection scores 0.28-0.45 against single seed
articles (0.51 against their centroid), the seeds 0.35-0.49 against each
other. So topics, findings and time decide, and the text only confirms.

This module does NOT read or write the database, render messages, decide who
is told, or summarise text (see ``bot.summary``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import mul
from typing import Literal

from bot.fingerprints import (
    SKETCH_SIZE,
    Fingerprint,
    bottom_k_resemblance,
    fingerprint,
    unit_vector,
)
from metwatch.models import Classified


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


# -- the decision ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterPolicy:
    """Thresholds of the decision (see the module docstring for what each means)."""

    window_days: float = 3.0
    min_similarity: float = 0.3
    min_shared_findings: int = 2
    min_similarity_alone: float = 0.7
    syndication_jaccard: float = 0.8

    def __post_init__(self) -> None:
        if self.window_days <= 0:
            raise ValueError("window_days must be positive")
        if self.min_shared_findings < 1:
            raise ValueError("min_shared_findings must be at least 1")
        for name in ("min_similarity", "min_similarity_alone", "syndication_jaccard"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")


DEFAULT_POLICY = ClusterPolicy()


@dataclass(frozen=True, slots=True)
class ItemFeatures:
    """What clustering knows of one flagged item."""

    item_id: str
    fingerprint: Fingerprint
    #: Specific findings stated (topic-only matches excluded).
    finding_ids: frozenset[str]
    topic_ids: frozenset[str]
    published: datetime | None = None


def features_of(classified: Classified, fp: Fingerprint | None = None) -> ItemFeatures:
    """Features of a classified item; pass ``fp`` when it is already stored."""
    item = classified.item
    return ItemFeatures(
        item_id=item.id,
        fingerprint=fp if fp is not None else fingerprint(item.text),
        finding_ids=frozenset(m.finding_id for m in classified.matches if not m.topic_only),
        topic_ids=frozenset(m.topic_id for m in classified.matches),
        published=item.published,
    )


@dataclass(frozen=True, slots=True)
class StoryCandidate:
    """A recent story as clustering sees it: its id, when it began, its members."""

    story_id: int
    #: When the story was first seen; stands in for members without a published time.
    first_seen: datetime
    members: tuple[ItemFeatures, ...]


Reason = Literal["syndicated", "shared-findings", "similar-text", "new"]


@dataclass(frozen=True, slots=True)
class Assignment:
    """The decision for one item, with the numbers behind it (for logs)."""

    #: Story to join, or None for a new story.
    story_id: int | None
    reason: Reason
    #: Cosine between the item and the story centroid.
    similarity: float = 0.0
    #: Jaccard of the item's findings and the story's findings.
    finding_jaccard: float = 0.0
    #: The member this item is a syndicated copy of (renderers collapse them).
    copy_of: str | None = None


def _effective_time(published: datetime | None, now: datetime) -> datetime:
    # Feeds sometimes date items in the future; clamping keeps a wrong clock
    # from pushing an item out of (or into) a window.
    return min(published, now) if published is not None else now


def assign_story(
    item: ItemFeatures,
    candidates: Sequence[StoryCandidate],
    *,
    now: datetime,
    policy: ClusterPolicy = DEFAULT_POLICY,
) -> Assignment:
    """Which of ``candidates`` the item joins (``story_id`` None: a new story)."""
    index = StoryIndex(capacity=max(len(candidates), 1))
    for candidate in candidates:
        index.put(candidate)
    return index.assign(item, now=now, policy=policy)


class _Probe:
    """An item being assigned, with its unit vector and sketch set computed once."""

    __slots__ = ("at", "features", "sketch", "terms", "unit", "unit_norm")

    def __init__(self, features: ItemFeatures, now: datetime) -> None:
        self.features = features
        #: The item's time, as the window compares it.
        self.at = _effective_time(features.published, now)
        self.sketch = frozenset(features.fingerprint.sketch)
        self.unit = unit_vector(features.fingerprint.terms)
        self.terms = frozenset(self.unit)
        self.unit_norm = math.sqrt(sum(w * w for w in self.unit.values()))


class _StoryState:
    """A candidate story with what every assessment needs, kept up to date as
    members join, instead of recomputed from the members for every item."""

    __slots__ = ("story_id", "first_seen", "revision", "members", "finding_ids", "topic_ids",
                 "earliest", "centroid", "centroid_norm", "terms", "sketch_hashes")  # fmt: skip

    def __init__(self, story_id: int, first_seen: datetime, revision: int) -> None:
        self.story_id = story_id
        self.first_seen = first_seen
        self.revision = revision
        #: (item id, sketch as a set) per member, in joining order.
        self.members: list[tuple[str, frozenset[int]]] = []
        self.finding_ids: set[str] = set()
        self.topic_ids: set[str] = set()
        #: The earliest coverage: first seen, or a member's published time if earlier.
        self.earliest = first_seen
        #: Sum of the members' unit vectors, and its norm.
        self.centroid: dict[str, float] = {}
        self.centroid_norm = 0.0
        #: The centroid's terms as a set (intersected with each item's).
        self.terms: set[str] = set()
        #: Every member's sketch hashes together (the index's postings point here).
        self.sketch_hashes: set[int] = set()

    def add(self, member: ItemFeatures, unit: dict[str, float] | None = None) -> frozenset[int]:
        """Take ``member`` in (``unit``: its unit vector, if computed already);
        returns its sketch as a set."""
        sketch = frozenset(member.fingerprint.sketch)
        self.members.append((member.item_id, sketch))
        self.sketch_hashes |= sketch
        self.finding_ids |= member.finding_ids
        self.topic_ids |= member.topic_ids
        if member.published is not None:
            self.earliest = min(self.earliest, member.published)
        if unit is None:
            unit = unit_vector(member.fingerprint.terms)
        centroid = self.centroid
        # |c + u|^2 = |c|^2 + sum over u's terms of (2 c_t + u_t) u_t: the norm is
        # kept up to date over the member's terms, not the story's.
        norm2 = self.centroid_norm * self.centroid_norm
        for term, weight in unit.items():
            before = centroid.get(term, 0.0)
            centroid[term] = before + weight
            norm2 += (2.0 * before + weight) * weight
        self.terms.update(unit)
        self.centroid_norm = math.sqrt(norm2)
        return sketch

    def began(self, now: datetime) -> datetime:
        """Time of the earliest coverage (clamped to ``now``): the window's anchor."""
        return min(self.earliest, now)

    def copy_of(self, probe: _Probe, threshold: float) -> str | None:
        """The first member ``probe`` is a syndicated copy of, if any."""
        for item_id, sketch in self.members:
            shared = len(probe.sketch & sketch)
            # The bottom-k estimate is at most shared / min(k, |union|): most
            # members are ruled out by that bound without sorting the union.
            union = len(probe.sketch) + len(sketch) - shared
            if not union or shared < threshold * min(SKETCH_SIZE, union):
                continue
            if bottom_k_resemblance(probe.sketch, sketch) >= threshold:
                return item_id
        return None

    def cosine(self, probe: _Probe) -> float:
        a, b = probe.unit, self.centroid
        # Only shared terms add to the dot product: intersect the term sets first
        # (in C, over the smaller set) rather than look up every term of one vector
        # in the other; a centroid grows with its story, an item does not.
        shared = probe.terms & self.terms
        dot = sum(map(mul, map(a.__getitem__, shared), map(b.__getitem__, shared)))
        norm = probe.unit_norm * self.centroid_norm
        return dot / norm if norm else 0.0


class StoryIndex:
    """The recent stories clustering compares items with, held in memory.

    Features (centroids, sketch sets, finding and topic sets) are computed once
    per member, not once per member per incoming item. It keeps the newest
    ``capacity`` stories by first seen; the caller keeps it in step with the
    store (``revision`` tells which stories changed elsewhere). Pure: no I/O.
    """

    def __init__(self, capacity: int = 200) -> None:
        self.capacity = capacity
        self._stories: dict[int, _StoryState] = {}
        #: Sketch hash -> the stories with a member that has it. Syndicated copies
        #: share most of their hashes, so a story sharing few with an item cannot
        #: hold its copy, and its members need not be compared one by one.
        self._holders: dict[int, set[int]] = {}
        #: The last item assigned: ``record`` of the same item reuses its vector.
        self._last_probe: _Probe | None = None

    def __len__(self) -> int:
        return len(self._stories)

    def revision(self, story_id: int) -> int | None:
        """The revision the index holds for a story, None when it holds none."""
        state = self._stories.get(story_id)
        return state.revision if state is not None else None

    def put(self, candidate: StoryCandidate, revision: int = 1) -> None:
        """Hold ``candidate`` as it stands, replacing what the index had of it."""
        self._forget(candidate.story_id)
        state = _StoryState(candidate.story_id, candidate.first_seen, revision)
        self._stories[candidate.story_id] = state
        for member in candidate.members:
            self._add(state, member)
        self._evict()

    def record(self, story_id: int, item: ItemFeatures, *, first_seen: datetime) -> None:
        """``item`` was filed under ``story_id`` (a new story when the index lacks it)."""
        state = self._stories.get(story_id)
        if state is None:
            state = self._stories[story_id] = _StoryState(story_id, first_seen, 0)
        last = self._last_probe
        self._add(state, item, last.unit if last is not None and last.features is item else None)
        state.revision += 1  # as the store's: 1 for a new story, +1 per member joining
        self._evict()

    def keep_only(self, story_ids: Iterable[int]) -> None:
        """Forget every story not in ``story_ids``."""
        wanted = set(story_ids)
        for story_id in [s for s in self._stories if s not in wanted]:
            self._forget(story_id)

    def assign(
        self,
        item: ItemFeatures,
        *,
        now: datetime,
        since: datetime | None = None,
        policy: ClusterPolicy = DEFAULT_POLICY,
    ) -> Assignment:
        """Which held story the item joins (stories first seen before ``since`` are
        not considered); ``story_id`` None: a new story."""
        probe = self._last_probe = _Probe(item, now)
        may_hold_copy = self._may_hold_copy(probe, policy.syndication_jaccard)
        window = timedelta(days=policy.window_days)
        best: Assignment | None = None
        for state in self._stories.values():
            if since is not None and state.first_seen < since:
                continue
            found = _assess(probe, state, now, window, policy, may_hold_copy(state.story_id))
            if found is not None and (best is None or _rank(found) > _rank(best)):
                best = found
        return best if best is not None else Assignment(None, "new")

    def _may_hold_copy(self, probe: _Probe, threshold: float) -> Callable[[int], bool]:
        """Whether a story may hold a syndicated copy of ``probe``: exactly the
        stories ``_StoryState.copy_of`` could find one in.

        A member is a copy only if it shares at least ``threshold * min(k,
        union)`` hashes with the item, and the union is at least the item's own
        sketch; a story sharing fewer hashes over all its members has no copy.
        """
        need = threshold * min(SKETCH_SIZE, len(probe.sketch))
        if need <= 0:
            return lambda _story_id: True
        shared: Counter[int] = Counter()
        holders = self._holders
        for h in probe.sketch:
            if (stories := holders.get(h)) is not None:
                shared.update(stories)
        return lambda story_id: shared[story_id] >= need

    def _add(
        self, state: _StoryState, member: ItemFeatures, unit: dict[str, float] | None = None
    ) -> None:
        for h in state.add(member, unit):
            self._holders.setdefault(h, set()).add(state.story_id)

    def _forget(self, story_id: int) -> None:
        state = self._stories.pop(story_id, None)
        if state is None:
            return
        for h in state.sketch_hashes:
            stories = self._holders[h]
            stories.discard(story_id)
            if not stories:
                del self._holders[h]

    def _evict(self) -> None:
        if len(self._stories) <= self.capacity:
            return
        newest = sorted(
            self._stories.values(), key=lambda s: (s.first_seen, s.story_id), reverse=True
        )
        for state in newest[self.capacity :]:
            self._forget(state.story_id)


def _rank(a: Assignment) -> tuple[bool, float, int]:
    assert a.story_id is not None
    return (a.reason == "syndicated", a.similarity + a.finding_jaccard, -a.story_id)


def _assess(
    probe: _Probe, story: _StoryState, now: datetime, window: timedelta, policy: ClusterPolicy,
    may_hold_copy: bool,
) -> Assignment | None:  # fmt: skip
    """The assignment to ``story`` if the item may join it (within ``window`` of the
    story's first coverage), else None."""
    item = probe.features
    if not story.members or item.topic_ids.isdisjoint(story.topic_ids):
        return None
    if abs(probe.at - story.began(now)) > window:
        return None
    copy_of = story.copy_of(probe, policy.syndication_jaccard) if may_hold_copy else None
    similarity = story.cosine(probe)
    shared = item.finding_ids & story.finding_ids
    reason: Reason
    if copy_of is not None:
        reason = "syndicated"
    elif len(shared) >= policy.min_shared_findings and similarity >= policy.min_similarity:
        reason = "shared-findings"
    elif similarity >= policy.min_similarity_alone:
        reason = "similar-text"
    else:
        return None
    jaccard = _jaccard(item.finding_ids, frozenset(story.finding_ids))
    return Assignment(story.story_id, reason, similarity, jaccard, copy_of)
