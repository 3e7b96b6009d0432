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

    def spans(self, index: TextIndex) -> list[TokenSpan]:
        first_alts = self.slots[0]
        starts = sorted({p for alt in first_alts for p in index.find_token(alt[0])})
        found: list[TokenSpan] = []
        for start in starts:
            end = _match_slots(index, start, self.slots)
            if end is not None:
                found.append((start, end))
        return found


def _match_slots(
    index: TextIndex, position: int, slots: Sequence[tuple[tuple[str, ...], ...]]
) -> int | None:
    """Token position after the phrase if ``slots`` match at ``position``."""
    if not slots:
        return position
    for alt in slots[0]:
        end = position + len(alt)
        if end > len(index.tokens):
            continue
        if all(index.token_matches(position + k, t) for k, t in enumerate(alt)):
            rest = _match_slots(index, end, slots[1:])
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

    def spans(self, index: TextIndex) -> list[TokenSpan]:
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

    def char_spans(self, index: TextIndex) -> list[tuple[int, int]]:
        return [m.span() for m in self.regex.finditer(index.folded)]


Clause = Phrase | Proximity | Pattern
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
