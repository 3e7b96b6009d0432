"""Acceptance: every seed article yields exactly the findings it states, with evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from classifiers.match import match_item
from classifiers.rules import RuleSet
from metwatch.models import SourceSpec
from watchers.article import article_from_text
from watchers.normalise import normalise, utc_now

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
METADATA: list[dict[str, Any]] = YAML(typ="safe").load((SEEDS / "seeds.yaml").read_text())


def _fold(text: str) -> str:
    return " ".join(text.replace("’", "'").replace("“", '"').replace("”", '"').split())


def test_every_seed_file_has_metadata() -> None:
    files = sorted(p.name for p in SEEDS.glob("*.txt"))
    assert files == sorted(m["file"] for m in METADATA)
    assert len(files) == 5


@pytest.mark.parametrize("seed", METADATA, ids=lambda m: m["file"][:3])
def test_seed_is_flagged_with_exactly_its_findings(seed: dict[str, Any], rules: RuleSet) -> None:
    text = (SEEDS / seed["file"]).read_text(encoding="utf-8")
    entry = article_from_text(text, headline=seed["headline"])
    item = normalise(entry, SourceSpec("seed", seed["outlet"], "feed", "file:", 3600), utc_now())

    matches = {m.finding_id: m for m in match_item(item, rules) if not m.topic_only}

    assert set(matches) == set(seed["findings"])
    for finding_id, expected_sentence in seed["findings"].items():
        evidence = matches[finding_id].evidence
        assert any(_fold(expected_sentence) in _fold(e.sentence) for e in evidence), (
            finding_id, [e.sentence for e in evidence],
        )  # fmt: skip
        for e in evidence:  # offsets point at the quoted sentence in the item's text
            assert _fold(item.text[e.start : e.end]) == _fold(e.sentence)
