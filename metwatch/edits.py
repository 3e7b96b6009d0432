"""A poll's edits: stored items whose text changed at the source, which of them
are classified again, and what a new verdict adds.

A stub written up later may match now (an item not flagged before is filed like
a new one), or state a finding it did not (an item flagged only on its topic,
or for one finding, is given the new ones: their followers are owed the story).
Another feed's copy of a stored article (under another id, with other text: a
fuller version) is judged as an edit of it: it files the article if it matches
and the article did not, and gives its story the findings it states beyond it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from bot.fingerprints import Fingerprint
from bot.prepare import StoryInputs
from metwatch.models import Classified, Item
from metwatch.store.items import ItemEdit, SortedItems


@dataclass(frozen=True, slots=True)
class Edit:
    """A stored item edited at the source, and whether to classify it again."""

    store: ItemEdit
    reclassify: bool
    #: The findings and topics the item is stored with matches of; empty: not flagged.
    matched_before: frozenset[str] = frozenset()
    #: Another feed's copy of the stored article, under the stored id. If the
    #: article was not flagged, the copy's text is written only if it matches
    #: (it then stands for the article's); if it was, it gives the article's
    #: story what it states beyond it, and its text is not written.
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
    oldest first past ``capacity``, and all at once when the rules change. Kept in
    memory: a restart judges each copy once more."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._judged: dict[tuple[str, str], None] = {}
        #: The rules the remembered verdicts were given by.
        self._rules: object = None

    def to_judge(
        self, found: SortedItems, teasers: Mapping[str, object], rules: object
    ) -> list[Edit]:
        """The copies for ``rules`` to classify, as edits of the stored article: not
        a teaser (the stored article's text is its page's), not judged with this
        text by these rules, one per stored article."""
        if rules is not self._rules:  # the rules changed: judge everything again
            self._judged.clear()
            self._rules = rules
        wanted: dict[str, Edit] = {}
        for c in found.copies:
            if c.item.id in teasers or (c.stored_id, c.item.content_hash) in self._judged:
                continue
            as_stored = ItemEdit(
                replace(c.item, id=c.stored_id), keep_hash=True, if_unflagged=True
            )
            before = found.matched.get(c.stored_id, frozenset())
            wanted.setdefault(c.stored_id, Edit(as_stored, True, before, from_copy=True))
        return list(wanted.values())

    def judged(self, edits: Sequence[Edit], rules: object) -> None:
        """Remember these copies' text as judged by ``rules``, once their verdict is
        stored (not if the rules changed meanwhile: the new ones judge again)."""
        if rules is not self._rules:
            return
        for e in edits:
            if e.from_copy:
                self._judged[e.store.item.id, e.store.item.content_hash] = None
        while len(self._judged) > self.capacity:
            del self._judged[next(iter(self._judged))]


def reclassified(edits: Sequence[Edit]) -> list[Item]:
    """The edited items to classify again."""
    return [e.store.item for e in edits if e.reclassify]


def added_findings(classified: Classified, edit: Edit) -> Classified | None:
    """A flagged item's new verdict after an edit, cut to the matches it was not
    stored with (None: nothing new). A finding is new if the item had no match
    of it; a topic-only match if the item had no match in that topic."""
    new = tuple(m for m in classified.matches if m.finding_id not in edit.matched_before)
    return replace(classified, matches=new) if new else None


@dataclass(frozen=True, slots=True)
class FlaggedSplit:
    """A poll's flagged verdicts, by what storing them means."""

    #: The poll's edits by item id (none of them is a new item).
    edited: dict[str, Edit]
    #: To file under a story: new items, and edits of items not flagged before.
    to_file: list[tuple[Classified, StoryInputs]]
    #: Edits (or copies) of items filed already, cut to the findings they add, with
    #: the fingerprint of their new text (None: a copy's text is not written).
    added: list[tuple[Classified, Fingerprint | None]]
    #: The edits to write.
    written: list[ItemEdit]


def split_flagged(
    classified: Sequence[Classified], prepared: Sequence[StoryInputs], edits: Sequence[Edit]
) -> FlaggedSplit:
    """Sort a poll's verdicts (``prepared``: the flagged ones' story inputs, in order)."""
    edited = {e.store.item.id: e for e in edits}
    flagged = list(zip([c for c in classified if c.flagged], prepared, strict=True))
    # Another feed's copy of a stored article is written only if it matches, and the
    # article did not (it is filed with the copy's text).
    matching = {c.item.id for c, _ in flagged}
    written = [
        e.store for e in edits
        if not e.from_copy or (e.store.item.id in matching and not e.was_flagged)
    ]  # fmt: skip
    # An edit (or copy) of a flagged item is in its story already: it only gives it
    # the findings it states now and the item did not before.
    added = [
        (more, None if e.from_copy else fp) for c, (fp, _) in flagged
        if (e := edited.get(c.item.id)) is not None and e.was_flagged
        and (more := added_findings(c, e)) is not None
    ]  # fmt: skip
    to_file = [
        (c, inputs) for c, inputs in flagged
        if not ((e := edited.get(c.item.id)) is not None and e.was_flagged)
    ]  # fmt: skip
    return FlaggedSplit(edited, to_file, added, written)
