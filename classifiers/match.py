"""Match one item against the compiled rules: findings, topics and evidence.

Order of evaluation for each finding (cheapest first, and the first failure
decides):

1. ``require``: every named synonym group (e.g. the Met, the inspectorate)
   appears somewhere in the item, not counting its ``except`` phrases
   (so "Met Office" is not the Met);
2. ``none``: no clause matches (else the finding is vetoed);
3. ``all``: every clause matches within the finding's ``fields``;
4. ``any``: at least one clause matches (when any are listed);
5. score = number of clauses satisfied (``all`` + ``any``) >= ``min_score``.

A topic matches on its own ``require`` and clauses; it is reported as a
topic-only match when none of its findings matched, so coverage that is on
topic but states no tracked finding still reaches topic followers.

Pure: no I/O, no clock. ``explain_item`` returns the same decisions clause by
clause for ``metwatch classify --explain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from classifiers.expressions import Clause, Pattern
from classifiers.rules import CompiledClauses, Finding, RuleSet, Topic
from classifiers.sentences import SentenceFinder
from classifiers.text import TextIndex, field_ranges, index_text, normalise_unicode
from metwatch.models import Evidence, Item, Match, assemble_text

CharSpan = tuple[int, int]
_ALL_FIELDS = frozenset({"title", "summary", "body"})
_MAX_EVIDENCE = 2


@dataclass(frozen=True, slots=True)
class ClauseOutcome:
    kind: str
    text: str
    spans: tuple[CharSpan, ...]

    @property
    def hit(self) -> bool:
        return bool(self.spans)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why one finding or topic did or did not match one item."""

    id: str
    title: str
    is_topic: bool
    matched: bool
    reason: str
    context: dict[str, bool]
    clauses: tuple[ClauseOutcome, ...] = ()
    score: float = 0.0
    evidence: tuple[Evidence, ...] = field(default=())


class _ItemView:
    """Per-item caches shared by all findings: index, context terms, sentences."""

    def __init__(self, text: str, fields: dict[str, CharSpan], rules: RuleSet) -> None:
        self.index: TextIndex = index_text(text, fields)
        self.rules = rules
        self.sentences = SentenceFinder(text)
        self._terms: dict[str, bool] = {}
        self._clauses: dict[int, list[CharSpan]] = {}

    def term_present(self, name: str) -> bool:
        cached = self._terms.get(name)
        if cached is None:
            term = self.rules.terms[name]
            hits = [s for c in term.phrases for s in self.spans(c)]
            vetoes = [s for c in term.excluded for s in self.spans(c)]
            cached = any(not _overlaps(h, vetoes) for h in hits)
            self._terms[name] = cached
        return cached

    def spans(self, clause: Clause, fields: frozenset[str] = _ALL_FIELDS) -> list[CharSpan]:
        key = id(clause)
        found = self._clauses.get(key)
        if found is None:
            found = self._char_spans(clause)
            self._clauses[key] = found
        if fields == _ALL_FIELDS:
            return found
        return [s for s in found if self.index.field_at(s[0]) in fields]

    def _char_spans(self, clause: Clause) -> list[CharSpan]:
        if isinstance(clause, Pattern):
            return clause.char_spans(self.index)
        ix = self.index
        return [(ix.starts[a], ix.ends[b - 1]) for a, b in clause.spans(ix)]


def _overlaps(span: CharSpan, others: list[CharSpan]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in others)


def match_item(item: Item, rules: RuleSet) -> tuple[Match, ...]:
    """Every finding (and topic-only match) the item satisfies, with evidence."""
    return matches_from(explain_item(item, rules), rules)


def matches_from(explanations: list[Explanation], rules: RuleSet) -> tuple[Match, ...]:
    found = [e for e in explanations if e.matched and not e.is_topic]
    matched_topics = {rules.finding(e.id).topic_id for e in found}  # type: ignore[union-attr]
    result = [
        Match(e.id, rules.finding(e.id).topic_id, e.title, e.score, e.evidence)  # type: ignore[union-attr]
        for e in found
    ]
    for e in explanations:
        if e.is_topic and e.matched and e.id not in matched_topics:
            result.append(Match(e.id, e.id, e.title, e.score, e.evidence, topic_only=True))
    return tuple(result)


def explain_item(item: Item, rules: RuleSet) -> list[Explanation]:
    """The decision for every finding and topic of ``rules`` on ``item``."""
    title, summary, body = (normalise_unicode(x) for x in (item.title, item.summary, item.body))
    text = assemble_text(title, summary, body)
    view = _ItemView(text, field_ranges(title, summary, body), rules)
    explanations = [_explain_finding(view, f) for f in rules.findings]
    explanations += [_explain_topic(view, t) for t in rules.topics]
    return explanations


def _context(view: _ItemView, require: tuple[str, ...]) -> dict[str, bool]:
    context: dict[str, bool] = {}
    for name in require:
        context[name] = view.term_present(name)
        if not context[name]:
            break  # the rest cannot change the outcome; skip their cost
    return context


def _evaluate(
    view: _ItemView, clauses: CompiledClauses, fields: frozenset[str]
) -> tuple[ClauseOutcome, ...]:
    outcomes: list[ClauseOutcome] = []
    for kind, group in (("none", clauses.none), ("all", clauses.all), ("any", clauses.any)):
        for clause in group:
            spans = view.spans(clause, fields)
            outcomes.append(ClauseOutcome(kind, clause.text, tuple(spans)))
            if kind == "none" and spans:
                return tuple(outcomes)
    return tuple(outcomes)


def _decide(outcomes: tuple[ClauseOutcome, ...], min_score: float) -> tuple[bool, str, float]:
    vetoed = [o for o in outcomes if o.kind == "none" and o.hit]
    if vetoed:
        return False, f"vetoed by 'none' clause {vetoed[0].text!r}", 0.0
    missing = [o for o in outcomes if o.kind == "all" and not o.hit]
    if missing:
        return False, f"'all' clause {missing[0].text!r} not found", 0.0
    anys = [o for o in outcomes if o.kind == "any"]
    if anys and not any(o.hit for o in anys):
        return False, "no 'any' clause found", 0.0
    score = float(sum(1 for o in outcomes if o.kind != "none" and o.hit))
    if score < min_score:
        return False, f"score {score:g} below min_score {min_score:g}", score
    return True, f"score {score:g}", score


def _evidence(view: _ItemView, outcomes: tuple[ClauseOutcome, ...]) -> tuple[Evidence, ...]:
    # The specific 'any' clauses prove a finding better than broad 'all' context.
    kind = "any" if any(o.kind == "any" and o.hit for o in outcomes) else "all"
    firsts = sorted(o.spans[0] for o in outcomes if o.kind == kind and o.hit)
    evidence: list[Evidence] = []
    for start, end in firsts:
        ev = view.sentences.evidence(start, end)
        if all(ev.start != e.start for e in evidence):
            evidence.append(ev)
        if len(evidence) == _MAX_EVIDENCE:
            break
    return tuple(evidence)


def _explain_finding(view: _ItemView, finding: Finding) -> Explanation:
    context = _context(view, finding.require)
    if not all(context.values()):
        missing = [k for k, v in context.items() if not v]
        return Explanation(
            finding.id, finding.title, False, False, f"context missing: {missing[0]}", context
        )
    outcomes = _evaluate(view, finding.clauses, finding.fields)
    matched, reason, score = _decide(outcomes, finding.min_score)
    evidence = _evidence(view, outcomes) if matched else ()
    return Explanation(
        finding.id, finding.title, False, matched, reason, context, outcomes, score, evidence
    )


def _explain_topic(view: _ItemView, topic: Topic) -> Explanation:
    context = _context(view, topic.require)
    if not all(context.values()):
        missing = [k for k, v in context.items() if not v]
        return Explanation(
            topic.id, topic.title, True, False, f"context missing: {missing[0]}", context
        )
    outcomes = _evaluate(view, topic.clauses, _ALL_FIELDS)
    matched, reason, score = _decide(outcomes, 1.0 if outcomes else 0.0)
    evidence = _evidence(view, outcomes) if matched else ()
    return Explanation(
        topic.id, topic.title, True, matched, reason, context, outcomes, score, evidence
    )
