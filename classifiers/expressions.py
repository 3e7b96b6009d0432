"""Clause expressions of the rule language, compiled once per rules version.

A clause is one of:

* a phrase: words that must appear in order, e.g. ``"announced in advance"``.
  ``word*`` matches any word starting with ``word``; ``{name}`` matches any
  phrase of the synonym group ``name`` declared in the rules file.
* a proximity chain: ``A NEAR/n B`` (within n words, either order) or
  ``A ONEAR/n B`` (B after A, within n words); chains such as
  ``A NEAR/5 B NEAR/5 C`` apply each operator to the span built so far.
* a regular expression (``{re: "..."}`` in YAML), run by RE2 in linear time on
  the folded text (lower case, straight quotes, ``-`` for every dash).

Evaluation returns character spans; this module does not pick evidence sentences.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import re2

from classifiers.text import TextIndex, words

#: A span of matched tokens: (first token, token after the last).
TokenSpan = tuple[int, int]

# How many occurrences of one operand are combined in a proximity chain; an
# article repeating a common word hundreds of times must not cost quadratic time.
_MAX_OCCURRENCES = 200

_OPERATOR = re.compile(r"\s+(NEAR|ONEAR)/(\d+)\s+")
_PIECE = re.compile(r"\{[a-z0-9_-]+\}|[^\W_]+\*?")


class ExpressionError(ValueError):
    """A clause that cannot be compiled; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class Phrase:
    """A sequence of slots; each slot lists alternative token sequences."""

    text: str
    slots: tuple[tuple[tuple[str, ...], ...], ...]

    @property
    def trigger(self) -> tuple[str, ...]:
        """Words of which at least one must occur for the phrase to match (its
        narrowest slot's first words): the cheapest possible pre-check."""
        narrowest = min(self.slots, key=len)
        return tuple({alt[0] for alt in narrowest})

    def may_match(self, index: TextIndex) -> bool:
        """Every slot has some alternative whose every word occurs: a cheap pre-check."""
        return all(
            any(all(index.has_token(t) for t in alt) for alt in slot) for slot in self.slots
        )

    def spans(self, index: TextIndex) -> list[TokenSpan]:
        if not self.may_match(index):
            return []
        # Start only where an alternative's own first word occurs: trying every
        # alternative at every start made common words ("the", "in") costly.
        found: dict[int, int] = {}
        rest = self.slots[1:]
        for alt in self.slots[0]:
            # Anchor on the alternative's rarest word ("met" rather than "the").
            offset, anchor = min(enumerate(alt), key=lambda kw: len(index.find_token(kw[1])))
            for position in index.find_token(anchor):
                start = position - offset
                if start < 0 or start in found or not _match_alt(index, start, alt):
                    continue
                end = _match_slots(index, start + len(alt), rest)
                if end is not None:
                    found[start] = end
        return sorted(found.items())


def _match_alt(index: TextIndex, position: int, alt: tuple[str, ...]) -> bool:
    if position + len(alt) > len(index.tokens):
        return False
    return all(index.token_matches(position + k, t) for k, t in enumerate(alt))


def _match_slots(
    index: TextIndex, position: int, slots: Sequence[tuple[tuple[str, ...], ...]]
) -> int | None:
    """Token position after the phrase if ``slots`` match at ``position``."""
    if not slots:
        return position
    for alt in slots[0]:
        if _match_alt(index, position, alt):
            rest = _match_slots(index, position + len(alt), slots[1:])
            if rest is not None:
                return rest
    return None


@dataclass(frozen=True, slots=True)
class Proximity:
    """``A NEAR/n B`` or ``A ONEAR/n B`` chains."""

    text: str
    operands: tuple[Phrase, ...]
    #: (ordered, distance) between operand k and k+1.
    operators: tuple[tuple[bool, int], ...]

    @property
    def trigger(self) -> tuple[str, ...]:
        """As ``Phrase.trigger``, of the operand with the fewest trigger words."""
        return min((op.trigger for op in self.operands), key=len)

    def spans(self, index: TextIndex) -> list[TokenSpan]:
        if not all(op.may_match(index) for op in self.operands):
            return []
        current = self.operands[0].spans(index)[:_MAX_OCCURRENCES]
        for (ordered, distance), operand in zip(self.operators, self.operands[1:], strict=True):
            right = operand.spans(index)[:_MAX_OCCURRENCES]
            current = _combine(current, right, ordered=ordered, distance=distance)
            if not current:
                return []
        return current


def _combine(
    left: list[TokenSpan], right: list[TokenSpan], *, ordered: bool, distance: int
) -> list[TokenSpan]:
    joined: set[TokenSpan] = set()
    for a_start, a_end in left:
        for b_start, b_end in right:
            gap = b_start - a_end if b_start >= a_end else a_start - b_end
            if ordered and b_start < a_end:
                continue
            if max(gap, 0) <= distance and (a_start, a_end) != (b_start, b_end):
                joined.add((min(a_start, b_start), max(a_end, b_end)))
    return sorted(joined)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regular expression clause (RE2: linear time, no backtracking)."""

    text: str
    regex: re2._Regexp
    #: Regular expressions have no cheap pre-check.
    trigger: tuple[str, ...] | None = None

    def char_spans(self, index: TextIndex) -> list[tuple[int, int]]:
        return [m.span() for m in self.regex.finditer(index.folded)]


Clause = Phrase | Proximity | Pattern


@dataclass(frozen=True, slots=True)
class Trigger:
    """Words (and ``word*`` prefixes) of which one must occur for some clause to match."""

    words: frozenset[str]
    prefixes: tuple[str, ...]
    #: Regular expressions among the clauses (by text): they occur if the item's
    #: one RE2 Set pass found them.
    patterns: frozenset[str]

    def may_occur(self, index: TextIndex, patterns_found: frozenset[str]) -> bool:
        return (
            not self.words.isdisjoint(index.vocabulary)
            or not self.patterns.isdisjoint(patterns_found)
            or any(index.has_token(p) for p in self.prefixes)
        )


def trigger_of(clauses: Sequence[Clause]) -> Trigger:
    """What must occur for any of ``clauses`` to match."""
    words: set[str] = set()
    patterns: set[str] = set()
    for clause in clauses:
        if isinstance(clause, Pattern):
            patterns.add(clause.text)
        else:
            words.update(clause.trigger)
    prefixes = tuple(sorted(w for w in words if w.endswith("*")))
    return Trigger(
        frozenset(w for w in words if not w.endswith("*")), prefixes, frozenset(patterns)
    )


class PatternSet:
    """Every regular expression of a rules file, run in ONE RE2 Set pass per item."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(dict.fromkeys(patterns))
        options = re2.Options()
        options.case_sensitive = False
        options.log_errors = False
        self._set = re2.Set.SearchSet(options)
        for pattern in self.patterns:
            self._set.Add(pattern)
        self._set.Compile()

    def found(self, folded: str) -> frozenset[str]:
        """The patterns that occur somewhere in ``folded``."""
        if not self.patterns:
            return frozenset()
        hits = self._set.Match(folded) or ()  # the binding answers None for no match
        return frozenset(self.patterns[i] for i in hits)


SynonymLookup = Callable[[str], tuple[tuple[str, ...], ...] | None]


def compile_phrase(text: str, synonyms: SynonymLookup) -> Phrase:
    """Compile one phrase; ``{name}`` is looked up in the synonym table."""
    slots: list[tuple[tuple[str, ...], ...]] = []
    for piece in _PIECE.findall(text.lower()):
        if piece.startswith("{"):
            alternatives = synonyms(piece[1:-1])
            if alternatives is None:
                raise ExpressionError(
                    f"unknown synonym group {piece} in {text!r}: declare it under 'synonyms'"
                )
            slots.append(alternatives)
        else:
            slots.append(((piece,),))
    if not slots:
        raise ExpressionError(f"phrase {text!r} has no words")
    return Phrase(text=text, slots=tuple(slots))


def compile_clause(source: str | Mapping[str, str], synonyms: SynonymLookup) -> Clause:
    """Compile a clause from the rules file: a phrase, a NEAR chain or ``{re: ...}``."""
    if isinstance(source, Mapping):
        return compile_regex(source["re"])
    parts = _OPERATOR.split(source.strip())
    if len(parts) == 1:
        return compile_phrase(_unquote(parts[0]), synonyms)
    operands = tuple(compile_phrase(_unquote(p), synonyms) for p in parts[0::3])
    operators = tuple(
        (name == "ONEAR", int(n)) for name, n in zip(parts[1::3], parts[2::3], strict=True)
    )
    return Proximity(text=source, operands=operands, operators=operators)


def compile_regex(pattern: str) -> Pattern:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    try:
        regex = re2.compile(pattern, options)
    except re2.error as e:
        raise ExpressionError(
            f"invalid regular expression {pattern!r}: {e} (RE2 syntax: no look-around "
            "or back-references)"
        ) from e
    return Pattern(text=pattern, regex=regex)


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def screen_pattern(alternatives: Sequence[tuple[str, ...]]) -> re2._Regexp:
    """A cheap necessary condition for any of ``alternatives`` over folded text.

    Word boundaries are left out (RE2's are ASCII-only), so it may say "maybe"
    where the token matcher says no, but never "no" where it would say yes.
    """
    options = re2.Options()
    options.log_errors = False
    parts = []
    for alt in alternatives:
        body = "[\\W_]+".join(re.escape(t.rstrip("*")) for t in alt)
        # ASCII-only edges keep it a superset: a non-ASCII letter counts as an edge.
        tail = "" if alt[-1].endswith("*") else "(?:[^a-z0-9]|$)"
        parts.append(f"(?:^|[^a-z0-9]){body}{tail}")
    return re2.compile("|".join(parts) or "$^", options)


def phrase_alternatives(phrases: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """A synonym group's phrases as token sequences (``*`` kept on the last word)."""
    result: list[tuple[str, ...]] = []
    for phrase in phrases:
        tokens = tuple(_PIECE.findall(phrase.lower()))
        if tokens and not any(t.startswith("{") for t in tokens):
            result.append(tokens)
        elif not words(phrase):
            raise ExpressionError(f"synonym {phrase!r} has no words")
        else:
            raise ExpressionError(f"synonym {phrase!r} cannot refer to another group")
    return tuple(result)
