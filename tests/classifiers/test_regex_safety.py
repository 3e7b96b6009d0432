"""Regular-expression clauses cannot stall matching, and backtracking-only syntax is refused.

``{re: ...}`` clauses run on RE2 (linear time in the text), so a pathological
pattern in the rules file cannot hold the pipeline on a hostile or unlucky feed.
Patterns that need a backtracking engine (look-around, back-references) are
rejected when the rules load, with the file, the line and "RE2 syntax".
"""

from __future__ import annotations

import time

import pytest

from classifiers.match import explain_item, match_item
from classifiers.rules import parse_rules
from metwatch.errors import RulesError
from metwatch.models import Item

# No `require`, so the regex clauses always run (context cannot short-circuit them);
# the topic runs both patterns too (a topic without clauses would match every item).
PATHOLOGICAL = """\
version: 1
topics:
  - id: stress
    title: Stress
    match:
      any: [{re: "(a+)+$"}, {re: "(x+x+)+y"}]
findings:
  - id: nested-a
    topic: stress
    title: Nested quantifier
    description: (a+)+$ against many a's and a final non-match.
    match:
      any: [{re: "(a+)+$"}]
  - id: nested-x
    topic: stress
    title: Overlapping quantifiers
    description: (x+x+)+y against many x's and no y.
    match:
      any: [{re: "(x+x+)+y"}]
"""

# Wall-clock bound: generous so a loaded CI machine cannot flake; RE2 needs milliseconds.
BOUND_SECONDS = 2.0


def _item(body: str) -> Item:
    return Item("id", "src", "Outlet", None, "Stress test", "", body, None, "h")


@pytest.mark.parametrize(
    ("body", "finding"),
    [
        # Python `re` backtracks through every way of splitting the run of a's: measured
        # at ~1.3 s for 24 a's and doubling with each extra one, 50,000 a's would take
        # about 1.3 * 2**49_976 s (~10**15_044 s). RE2 scans the text once.
        ("a" * 50_000 + "!", "nested-a"),
        # Same story for (x+x+)+y: ~0.8 s for 24 x's with `re`, doubling per character,
        # so ~10**9_024 s for 30,000 x's.
        ("x" * 30_000, "nested-x"),
    ],
    ids=["(a+)+$", "(x+x+)+y"],
)
def test_pathological_pattern_cannot_stall_matching(body: str, finding: str) -> None:
    rules = parse_rules(PATHOLOGICAL.encode(), "stress.yaml")
    item = _item(body)

    started = time.perf_counter()
    matches = match_item(item, rules)
    elapsed = time.perf_counter() - started

    assert elapsed < BOUND_SECONDS, f"matching took {elapsed:.2f}s"
    assert matches == ()
    # The clause really ran over the whole text (and found nothing), not skipped.
    decision = next(e for e in explain_item(item, rules) if e.id == finding)
    assert [(o.kind, o.hit) for o in decision.clauses] == [("any", False)]
    assert decision.reason == "no 'any' clause found"


def test_linear_pattern_still_matches_at_the_end_of_a_long_text() -> None:
    rules = parse_rules(PATHOLOGICAL.encode(), "stress.yaml")
    started = time.perf_counter()
    matches = match_item(_item("b " + "a" * 50_000), rules)
    assert time.perf_counter() - started < BOUND_SECONDS
    assert [m.finding_id for m in matches] == ["nested-a"]


MINIMAL = """\
version: 1
topics:
  - id: stress
    title: Stress
findings:
  - id: bad
    topic: stress
    title: Bad pattern
    description: A pattern RE2 cannot run.
    match:
      any:
        - "harmless phrase"
        - {{re: '{pattern}'}}
"""
PATTERN_LINE = 13


@pytest.mark.parametrize(
    "pattern",
    [r"visits(?= in advance)", r"(?<=met )police", r"(?!met office)met", r"(visit)\w+ \1"],
    ids=["lookahead", "lookbehind", "negative-lookahead", "backreference"],
)
def test_backtracking_only_syntax_is_rejected_with_its_line(pattern: str) -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(MINIMAL.format(pattern=pattern).encode(), "rules.yaml")
    error = info.value
    assert error.line == PATTERN_LINE
    message = str(error)
    assert message.startswith(f"rules.yaml:{PATTERN_LINE}:")
    assert "invalid regular expression" in message
    assert "RE2 syntax" in message
