"""Match one item against the compiled rules: findings, topics and evidence.

Order of evaluation for each finding (cheapest first, and the first failure
decides):

1. ``require``: every named synonym group (e.g. the Met, the inspectorate)
   appears somewhere in the item, not counting its ``except`` phrases
   (so "Met Office" is not the Met);
2. ``none``: no clause matches (else the finding is vetoed);
3. ``all``: every clause matches within the finding's ``fields``;
4. ``any``: at least one clause matches (when any are listed);
5. score = number of clauses satisfied (``all`` + ``any``) >= ``min_score``;
6. ``require_within`` (only for what passed 1-5): steps 3-5 are decided again
   counting only the proving matches (``any`` clauses', or ``all`` clauses' when
   there are no ``any`` clauses) that have every ``require`` group within the
   window; so the finding's sentence is about the Met, not a force that merely
   names it. A ``sentence`` side splits sentences (pysbd) only at this step,
   as evidence does, so items that fail 1-5 never pay for it.

A topic matches on its own ``require`` and clauses; it is reported as a
topic-only match when none of its findings matched, so coverage that is on
topic but states no tracked finding still reaches topic followers.

Pure: no I/O, no clock. ``explain_item`` returns the same decisions clause by
clause for ``metwatch classify --explain``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from classifiers.expressions import Clause, Pattern, TokenSpan
from classifiers.rules import CompiledClauses, Finding, RuleSet, Topic, Window
from classifiers.sentences import SentenceFinder
from classifiers.text import TextIndex, field_ranges, fold, index_text, normalise_unicode
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

    def __init__(
        self, text: str, fields: dict[str, CharSpan], rules: RuleSet, folded: str
    ) -> None:
        self.index: TextIndex = index_text(text, fields, folded)
        self.rules = rules
        self.sentences = SentenceFinder(text)
        #: One RE2 Set pass tells which regular expressions can match at all.
        self.patterns_found = rules.patterns.found(folded)
        self._terms: dict[str, list[TokenSpan]] = {}
        self._clauses: dict[int, list[CharSpan]] = {}

    def term_present(self, name: str) -> bool:
        return bool(self.term_spans(name))

    def term_spans(self, name: str) -> list[TokenSpan]:
        """Where the synonym group ``name`` occurs, minus its ``except`` phrases."""
        cached = self._terms.get(name)
        if cached is None:
            term = self.rules.terms[name]
            # In token positions: char offsets are only worth computing for evidence.
            hits = [s for c in term.phrases for s in self._token_spans(c)]
            vetoes = [s for c in term.excluded for s in self._token_spans(c)] if hits else []
            cached = [h for h in hits if not _overlaps(h, vetoes)]
            self._terms[name] = cached
        return cached

    def _token_spans(self, clause: Clause) -> list[TokenSpan]:
        if isinstance(clause, Pattern):  # regex spans are characters: map them to tokens
            return [_token_span(self.index, s) for s in self.spans(clause)]
        return clause.spans(self.index)

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
            if clause.text not in self.patterns_found:
                return []
            return clause.char_spans(self.index)
        ix = self.index
        return [(ix.starts[a], ix.ends[b - 1]) for a, b in clause.spans(ix)]


def _overlaps(span: tuple[int, int], others: list[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in others)


def _token_span(index: TextIndex, span: CharSpan) -> TokenSpan:
    """The tokens a character span covers: (first, after the last)."""
    return bisect_right(index.ends, span[0]), bisect_left(index.starts, span[1])


class _Prepared:
    """One item made ready for matching: folded once, tokenised only if needed."""

    def __init__(self, item: Item, rules: RuleSet) -> None:
        fields = [normalise_unicode(x) for x in (item.title, item.summary, item.body)]
        self.text = assemble_text(*fields)
        self.fields = field_ranges(*fields)
        self.folded = fold(self.text)
        self.rules = rules
        self._screened: dict[str, bool] = {}
        self._view: _ItemView | None = None

    def screened_out(self, require: tuple[str, ...]) -> str | None:
        """A required term the cheap screen proves absent (most news has no Met)."""
        for name in require:
            present = self._screened.get(name)
            if present is None:
                present = self.rules.terms[name].screen.search(self.folded) is not None
                self._screened[name] = present
            if not present:
                return name
        return None

    @property
    def view(self) -> _ItemView:
        if self._view is None:  # tokenise only items that may match something
            self._view = _ItemView(self.text, self.fields, self.rules, self.folded)
        return self._view


def match_item(item: Item, rules: RuleSet) -> tuple[Match, ...]:
    """Every finding (and topic-only match) the item satisfies, with evidence.

    The fast path: a finding is fully evaluated only when its context terms and
    its words occur; no explanation is kept for the ones that fail.
    """
    prepared = _Prepared(item, rules)
    result: list[Match] = []
    for finding in rules.findings:
        if prepared.screened_out(finding.require) is not None:
            continue
        view = prepared.view
        if not all(view.term_present(n) for n in finding.require):
            continue
        if _cannot_match(view, finding) is not None:
            continue
        e = _explain_finding(view, finding, detailed=True)
        if e.matched:
            result.append(Match(e.id, finding.topic_id, e.title, e.score, e.evidence))
    matched_topics = {m.topic_id for m in result}
    for topic in rules.topics:
        if topic.id in matched_topics or prepared.screened_out(topic.require) is not None:
            continue
        e = _explain_topic(prepared.view, topic)
        if e.matched:
            result.append(Match(e.id, e.id, e.title, e.score, e.evidence, topic_only=True))
    return tuple(result)


def matches_from(explanations: list[Explanation], rules: RuleSet) -> tuple[Match, ...]:
    """The matches ``explain_item`` found (the same as ``match_item`` gives)."""
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


def explain_item(item: Item, rules: RuleSet, *, detailed: bool = True) -> list[Explanation]:
    """The decision for every finding and topic of ``rules`` on ``item``.

    ``detailed`` evaluates every clause of every finding whose context is
    present (for ``--explain``); otherwise findings whose words are absent are
    rejected early with the first reason found.
    """
    prepared = _Prepared(item, rules)
    explanations: list[Explanation] = []
    every: tuple[Finding | Topic, ...] = (*rules.findings, *rules.topics)
    for rule in every:
        is_topic = isinstance(rule, Topic)
        missing = prepared.screened_out(rule.require)
        if missing is not None:
            reason = f"context missing: {missing}"
            explanations.append(
                Explanation(rule.id, rule.title, is_topic, False, reason, {missing: False})
            )
        elif isinstance(rule, Topic):
            explanations.append(_explain_topic(prepared.view, rule))
        else:
            explanations.append(_explain_finding(prepared.view, rule, detailed=detailed))
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
            if (kind == "none" and spans) or (kind == "all" and not spans):
                return tuple(outcomes)  # decided: the remaining clauses cannot change it
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


def _cannot_match(view: _ItemView, finding: Finding) -> str | None:
    """Why the finding's clauses certainly cannot match (set checks on words), or None."""
    ix, found = view.index, view.patterns_found
    for trigger in finding.prefilter.all:
        if not trigger.may_occur(ix, found):
            return "an 'all' clause's words are absent"
    anyone = finding.prefilter.any
    if anyone is not None and not anyone.may_occur(ix, found):
        return "no 'any' clause found"
    return None


def _explain_finding(view: _ItemView, finding: Finding, *, detailed: bool) -> Explanation:
    context = _context(view, finding.require)
    if not all(context.values()):
        missing = [k for k, v in context.items() if not v]
        return Explanation(
            finding.id, finding.title, False, False, f"context missing: {missing[0]}", context
        )
    if not detailed and (reason := _cannot_match(view, finding)) is not None:
        # Most findings fail here on most items; --explain takes the full path.
        return Explanation(finding.id, finding.title, False, False, reason, context)
    outcomes, matched, reason, score = _judge(
        view, finding.clauses, finding.fields, finding.min_score, finding
    )
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
    clauses = topic.clauses
    min_score = 1.0 if clauses.all or clauses.any or clauses.none else 0.0
    outcomes, matched, reason, score = _judge(view, clauses, _ALL_FIELDS, min_score, topic)
    evidence = _evidence(view, outcomes) if matched else ()
    return Explanation(
        topic.id, topic.title, True, matched, reason, context, outcomes, score, evidence
    )


def _judge(
    view: _ItemView,
    clauses: CompiledClauses,
    fields: frozenset[str],
    min_score: float,
    rule: Finding | Topic,
) -> tuple[tuple[ClauseOutcome, ...], bool, str, float]:
    """Outcomes, verdict, reason and score of a rule whose context is present."""
    outcomes = _evaluate(view, clauses, fields)
    matched, reason, score = _decide(outcomes, min_score)
    window = rule.require_within
    if not matched or window is None or not rule.require:
        return outcomes, matched, reason, score
    near = _with_context_near(view, outcomes, rule.require, window)
    matched, reason, score = _decide(near, min_score)
    if matched:
        return near, matched, reason, score
    # Keep the outcomes as found, so --explain shows the clause that hit too far away.
    far = _far_groups(view, outcomes, rule.require, window)
    return outcomes, False, f"{reason} near context {far} (require_within: {window})", score


def _proving_kind(outcomes: tuple[ClauseOutcome, ...]) -> str:
    """The clauses whose matches prove a rule: its 'any' ones, or its 'all' ones."""
    return "any" if any(o.kind == "any" for o in outcomes) else "all"


def _with_context_near(
    view: _ItemView, outcomes: tuple[ClauseOutcome, ...], require: tuple[str, ...], window: Window
) -> tuple[ClauseOutcome, ...]:
    """``outcomes`` keeping only the proving matches with every required group near."""
    kind = _proving_kind(outcomes)
    return tuple(
        ClauseOutcome(
            o.kind,
            o.text,
            tuple(s for s in o.spans if all(_near(view, s, n, window) for n in require)),
        )
        if o.kind == kind
        else o
        for o in outcomes
    )


def _far_groups(
    view: _ItemView, outcomes: tuple[ClauseOutcome, ...], require: tuple[str, ...], window: Window
) -> str:
    """The required groups no proving match has near it (all of them if each has one)."""
    kind = _proving_kind(outcomes)
    spans = [s for o in outcomes if o.kind == kind for s in o.spans]
    far = [n for n in require if not any(_near(view, s, n, window) for s in spans)]
    return " and ".join(repr(n) for n in far or require)


def _near(view: _ItemView, match: CharSpan, name: str, window: Window) -> bool:
    """Whether group ``name`` occurs within ``window`` of the clause ``match``."""
    ix = view.index
    first, last = _token_span(ix, match)
    sentence: Evidence | None = None
    for start, end in view.term_spans(name):
        if end <= first:
            reach, gap = window.before, first - end
        elif start >= last:
            reach, gap = window.after, start - last
        else:
            return True  # the match itself names it
        if isinstance(reach, int):
            if gap <= reach:
                return True
        else:  # "sentence": pysbd, on this paragraph only (cached for the evidence)
            sentence = sentence or view.sentences.evidence(*match)
            if sentence.start <= ix.starts[start] and ix.ends[end - 1] <= sentence.end:
                return True
    return False
