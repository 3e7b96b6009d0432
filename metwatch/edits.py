"""A poll's edits: stored items whose text changed at the source, which of them
are classified again, and what a new verdict adds.

A stub written up later may match now (an item not flagged before is filed like
a new one), or state a finding it did not (an item flagged only on its topic,
or for one finding, is given the new ones: their followers are owed the story).
Another feed's copy of a stored article that did not match (under another id,
with other text: a fuller version) is judged as an edit of it, and written only
if it matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from metwatch.models import Classified, Item
from metwatch.store.items import Copy, ItemEdit, SortedItems


@dataclass(frozen=True, slots=True)
class Edit:
    """A stored item edited at the source, and whether to classify it again."""

    store: ItemEdit
    reclassify: bool
    #: The findings (and topic-only matches) the item is stored with; empty: not flagged.
    matched_before: frozenset[str] = frozenset()
    #: Another feed's copy of the stored article, under the stored id: written
    #: only if it matches (its text then stands for the article's).
    from_copy: bool = False

    @property
    def was_flagged(self) -> bool:
        return bool(self.matched_before)


def edits_of(found: SortedItems, teasers: Mapping[str, object]) -> list[Edit]:
    """The poll's edits, each classified again on its new text unless its entry
    is a teaser: its stored body is the article's text, which the edit keeps,
    and a teaser's edit adds too little to change the verdict."""
    return [
        Edit(
            ItemEdit(i, keep_body=i.id in teasers),
            i.id not in teasers,
            found.matched.get(i.id, frozenset()),
        )  # fmt: skip
        for i in found.edited
    ]


class JudgedCopies:
    """Copies of stored articles that did not match, by their text: a feed lists
    its copy at every poll, and the same text is not classified again. Forgotten
    oldest first past ``capacity``, and all at once when the rules change."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._judged: dict[tuple[str, str], None] = {}

    def to_judge(self, copies: Sequence[Copy], teasers: Mapping[str, object]) -> list[Edit]:
        """The copies to classify, as edits of the stored article: not a teaser
        (the stored article's text is its page's), not judged with this text,
        one per stored article."""
        wanted: dict[str, Edit] = {}
        for c in copies:
            if c.item.id in teasers or (c.stored_id, c.item.content_hash) in self._judged:
                continue
            as_stored = replace(c.item, id=c.stored_id)
            wanted.setdefault(c.stored_id, Edit(ItemEdit(as_stored), True, from_copy=True))
        return list(wanted.values())

    def judged(self, edits: Sequence[Edit]) -> None:
        """Remember these copies' text as judged (once their verdict is stored)."""
        for e in edits:
            if e.from_copy:
                self._judged[e.store.item.id, e.store.item.content_hash] = None
        while len(self._judged) > self.capacity:
            del self._judged[next(iter(self._judged))]

    def clear(self) -> None:
        self._judged.clear()


def reclassified(edits: Sequence[Edit]) -> list[Item]:
    """The edited items to classify again."""
    return [e.store.item for e in edits if e.reclassify]


def added_findings(classified: Classified, edit: Edit) -> Classified | None:
    """A flagged item's new verdict after an edit, cut to the matches it was not
    stored with (None: nothing new). A topic-only match the item had already is
    not new; a finding in that topic is."""
    new = tuple(m for m in classified.matches if m.finding_id not in edit.matched_before)
    return replace(classified, matches=new) if new else None
