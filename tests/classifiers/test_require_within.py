"""``require_within``: required context counts only near the match that proves a rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from classifiers.match import explain_item, match_item, matches_from
from classifiers.rules import RuleSet, parse_rules
from metwatch.models import Item
from tests.conftest import ROOT

RULES = """\
version: 1
synonyms:
  met:
    any: [metropolitan police, the met]
    except: [met office]
  watchdog: [inspectorate, hmicfrs]
topics:
  - id: met-inspection
    title: Met inspections
    require: [met, watchdog]
    require_within: 8
    match:
      any: ["{met} NEAR/40 {watchdog}"]
findings:
  - id: visits
    topic: met-inspection
    title: Visits announced
    description: Visits announced in advance (the topic's window of 8 words).
    match:
      any: ["visits NEAR/5 advance"]
  - id: visits-before
    topic: met-inspection
    title: Visits announced
    description: Visits announced in advance (the Met earlier, or in the sentence).
    require_within: {before: 40, after: sentence}
    match:
      any: ["visits NEAR/5 advance"]
"""
# Sixteen words that name nothing the rules look for.
FILLER = (
    "Officers in several boroughs were also asked about response times and staffing "
    "levels during the year."
)


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return parse_rules(RULES.encode(), "rules.yaml")


def _item(body: str) -> Item:
    return Item("id", "src", "Outlet", None, "Report", "", body, None, "h")


def _findings(rules: RuleSet, body: str) -> set[str]:
    return {m.finding_id for m in match_item(_item(body), rules) if not m.topic_only}


def test_context_inside_the_window_counts(rules: RuleSet) -> None:
    body = "The Metropolitan Police announced visits in advance, the inspectorate said."
    assert _findings(rules, body) == {"visits", "visits-before"}


def test_context_named_only_further_away_does_not(rules: RuleSet) -> None:
    body = (
        f"Visits were announced in advance, the inspectorate said. {FILLER} "
        "It was once a model for the Metropolitan Police."
    )
    matches = match_item(_item(body), rules)
    # Still on topic (the Met is within 40 words of the inspectorate), but no finding.
    assert [(m.finding_id, m.topic_only) for m in matches] == [("met-inspection", True)]


def test_a_side_may_reach_back_further_than_the_other(rules: RuleSet) -> None:
    body = (
        f"The Metropolitan Police was inspected this spring. {FILLER} "
        "Visits were announced in advance, the inspectorate said."
    )
    assert _findings(rules, body) == {"visits-before"}
    later = f"Visits were announced in advance. {FILLER} The Met and HMICFRS disagree."
    assert _findings(rules, later) == set()


def test_an_except_phrase_next_to_the_match_is_not_context(rules: RuleSet) -> None:
    body = (
        f"The Met Office announced visits in advance, the inspectorate said. {FILLER} "
        "The Metropolitan Police was not involved."
    )
    assert _findings(rules, body) == set()


def test_evidence_is_the_match_with_context_near_it(rules: RuleSet) -> None:
    body = (
        f"Visits were announced in advance in Kent, the inspectorate said. {FILLER} "
        "The Metropolitan Police also announced visits in advance, HMICFRS found."
    )
    match = next(m for m in match_item(_item(body), rules) if m.finding_id == "visits")
    assert [e.sentence for e in match.evidence] == [
        "The Metropolitan Police also announced visits in advance, HMICFRS found."
    ]


def test_explain_says_the_context_was_not_near(rules: RuleSet) -> None:
    body = f"Visits were announced in advance, the inspectorate said. {FILLER} The Met agreed."
    explanations = {e.id: e for e in explain_item(_item(body), rules)}
    visits = explanations["visits"]
    assert not visits.matched
    assert visits.reason == ("no 'any' clause found near context 'met' (require_within: 8 words)")
    assert [c.hit for c in visits.clauses] == [True]  # it matched, only too far away
    assert explanations["visits-before"].reason.endswith(
        "near context 'met' (require_within: 40 words before, sentence after)"
    )
    assert matches_from(list(explanations.values()), rules) == match_item(_item(body), rules)


def test_default_rules_do_not_credit_the_met_to_another_force(rules: RuleSet) -> None:
    del rules  # the default watch rules, not this module's
    default = parse_rules((ROOT / "watch-rules.yaml").read_bytes(), "watch-rules.yaml")
    other_force = (
        "Greater Manchester Police still announces too many visits to registered sex "
        "offenders in advance, the police inspectorate said. It was once held up as a "
        "model for other forces, including the Metropolitan Police."
    )
    the_met = other_force.replace("Greater Manchester Police", "The Metropolitan Police")
    assert "announced-visits" not in _findings(default, other_force)
    assert "announced-visits" in _findings(default, the_met)


def test_rules_check_prints_the_positioned_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULES.replace("require_within: 8", "require_within: paragraph"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METWATCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "metwatch", "rules", "check", str(bad)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        f"{bad}:11:5: topics.0.require_within: 'paragraph' is neither a number of words "
        "(0 or more) nor 'sentence' (write a number of words such as 40, 'sentence', "
        "or {before: 200, after: sentence})"
    ) in result.stderr
