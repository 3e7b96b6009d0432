"""A poll's edits: stored items whose text changed at the source, and which of
them are classified again (a stub written up later may match now)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from metwatch.models import Item
from metwatch.store.items import ItemEdit, SortedItems


@dataclass(frozen=True, slots=True)
class Edit:
    """A stored item edited at the source, and whether to classify it again."""

    store: ItemEdit
    reclassify: bool


def edits_of(found: SortedItems, teasers: Mapping[str, object]) -> list[Edit]:
    """The poll's edits. An item not flagged is classified again on its new text,
    unless its entry is a teaser: its stored body is the article's text, which the
    edit keeps, and a teaser's edit adds too little to change the verdict."""
    unflagged = {i.id for i in found.unflagged_edits}
    return [
        Edit(ItemEdit(i, keep_body=i.id in teasers), i.id in unflagged and i.id not in teasers)
        for i in found.edited
    ]


def reclassified(edits: Sequence[Edit]) -> list[Item]:
    """The edited items to classify again."""
    return [e.store.item for e in edits if e.reclassify]
