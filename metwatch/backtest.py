"""Backtests: re-run rules over stored items (and seed articles) before a change goes live.

Reports, per finding, how many items the rules flag; with a second rules
file, exactly which items the change would add or drop for each finding,
with the evidence. Pure over its inputs: the caller supplies the items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from classifiers.match import match_item
from classifiers.rules import RuleSet
from metwatch.models import Item, Match


@dataclass(frozen=True, slots=True)
class Difference:
    """An item a rules change would newly flag (or stop flagging) for a finding."""

    finding_id: str
    item: Item
    #: The match under the rules that flag it.
    match: Match


@dataclass
class BacktestReport:
    items: int = 0
    current: Counter[str] = field(default_factory=Counter)
    proposed: Counter[str] = field(default_factory=Counter)
    added: list[Difference] = field(default_factory=list)
    dropped: list[Difference] = field(default_factory=list)


def backtest(
    items: Iterable[Item],
    current: RuleSet,
    proposed: RuleSet | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> BacktestReport:
    """Classify every item with ``current`` (and ``proposed``) and compare."""
    report = BacktestReport()
    for item in items:
        report.items += 1
        before = {m.finding_id: m for m in match_item(item, current)}
        report.current.update(before.keys())
        if proposed is not None:
            after = {m.finding_id: m for m in match_item(item, proposed)}
            report.proposed.update(after.keys())
            report.added += [Difference(f, item, after[f]) for f in after.keys() - before.keys()]
            report.dropped += [
                Difference(f, item, before[f]) for f in before.keys() - after.keys()
            ]
        if progress is not None:
            progress(1)
    return report
