"""Matching: context required, punctuation/case folded, hard negatives not flagged."""

from __future__ import annotations

import pytest

from classifiers.match import explain_item, match_item
from classifiers.rules import RuleSet
from metwatch.models import Item


def _item(title: str, body: str) -> Item:
    return Item("id", "src", "Outlet", None, title, "", body, None, "h")


def _findings(rules: RuleSet, title: str, body: str) -> set[str]:
    return {m.finding_id for m in match_item(_item(title, body), rules) if not m.topic_only}


def test_on_topic_paraphrases(rules: RuleSet) -> None:
    body = (
        "Scotland Yard was criticised by the police watchdog. Inspectors said pre‑arranged "
        "visits to registered sex offenders let them hide phones."
    )
    assert "announced-visits" in _findings(rules, "Watchdog report", body)


def test_curly_quotes_hyphens_and_case_are_folded(rules: RuleSet) -> None:
    body = (
        "HMICFRS found the MET POLICE had a “No-Further-Action” rate of 60% in "
        "INDECENT-IMAGERY of children investigations."
    )
    assert _findings(rules, "Inspection", body) == {"iic-nfa-rate"}


@pytest.mark.parametrize(
    ("title", "body"),
    [
        (
            "Greater Manchester Police criticised",
            "The inspectorate found too many visits to registered sex offenders were announced "
            "in advance by Greater Manchester Police.",
        ),
        (
            "Met Office warns of storms",
            "The Met Office issued an inspection of flood defences; forecasters visited sites "
            "in advance of the storm, and a sex offender register was not mentioned.",
        ),
        (
            "Met commissioner at awards",
            "The Metropolitan Police commissioner handed out bravery awards on Thursday.",
        ),
        (
            "Sex offender jailed",
            "A registered sex offender who had not been visited since 2017 was jailed in Leeds.",
        ),
    ],
    ids=["other-force", "met-office", "other-met-news", "unrelated-sex-offender"],
)
def test_hard_negatives_are_not_flagged(rules: RuleSet, title: str, body: str) -> None:
    assert match_item(_item(title, body), rules) == ()


def test_topic_only_match_without_a_finding(rules: RuleSet) -> None:
    body = "The Metropolitan Police will leave special measures, the police inspectorate said."
    matches = match_item(_item("Met leaves special measures", body), rules)
    assert [(m.finding_id, m.topic_only) for m in matches] == [("met-inspection", True)]
    assert matches[0].evidence[0].sentence == body


def test_explain_names_the_missing_context(rules: RuleSet) -> None:
    explanations = explain_item(_item("Weather", "The Met Office forecasts rain."), rules)
    assert {e.reason for e in explanations} <= {
        "context missing: met", "context missing: inspectorate",
    }  # fmt: skip
    explanations = explain_item(
        _item("Weather", "The Met Office forecasts rain, the inspectorate said."), rules
    )
    assert {e.reason for e in explanations} == {"context missing: met"}
