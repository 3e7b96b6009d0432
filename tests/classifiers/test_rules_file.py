"""The rules file is validated on load: every error names file, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifiers.rules import load_rules, parse_rules
from metwatch.errors import RulesError

MINIMAL = """\
version: 1
synonyms:
  met: [metropolitan police, the met]
topics:
  - id: met-inspection
    title: Met inspections
    require: [met]
findings:
  - id: visits
    topic: met-inspection
    title: Visits announced
    description: Visits announced in advance.
    match:
      any: ["visits NEAR/5 advance"]
sources:
  - id: feed-a
    name: Outlet A
    url: http://127.0.0.1:1/feed.xml
"""


def _error(text: str, tmp_path: Path) -> RulesError:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesError) as info:
        load_rules(path)
    return info.value


def test_minimal_file_loads() -> None:
    rules = parse_rules(MINIMAL.encode(), "rules.yaml")
    assert [f.id for f in rules.findings] == ["visits"]
    assert rules.sources[0].url == "http://127.0.0.1:1/feed.xml"
    assert rules.follow_targets == {"met-inspection", "visits"}


def test_unknown_key_names_line_and_column(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    title: Visits announced\n", "    title: Visits announced\n    colour: red\n"
    )
    error = _error(text, tmp_path)
    assert error.line == 12 and error.column == 5
    assert "unknown key 'findings.0.colour'" in str(error)
    assert str(error).startswith(f"{tmp_path / 'rules.yaml'}:12:5:")


def test_bad_regex_is_reported_with_its_line(tmp_path: Path) -> None:
    text = MINIMAL.replace('any: ["visits NEAR/5 advance"]', 'any: [{re: "(?=lookahead)"}]')
    error = _error(text, tmp_path)
    assert "invalid regular expression" in str(error)
    assert error.line == 14


def test_missing_field_is_named(tmp_path: Path) -> None:
    error = _error(
        MINIMAL.replace("    description: Visits announced in advance.\n", ""), tmp_path
    )
    assert "missing field 'findings.0.description'" in str(error)
    assert error.line == 9


def test_unknown_synonym_group_and_topic(tmp_path: Path) -> None:
    text = MINIMAL.replace("visits NEAR/5 advance", "{nope} NEAR/5 advance").replace(
        "topic: met-inspection", "topic: elsewhere"
    )
    error = _error(text, tmp_path)
    assert "unknown synonym group {nope}" in str(error)
    assert "unknown topic 'elsewhere'" in str(error)


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    text = MINIMAL.replace("  - id: visits\n", "  - id: met-inspection\n")
    assert "duplicate id 'met-inspection'" in str(_error(text, tmp_path))


def test_not_yaml(tmp_path: Path) -> None:
    error = _error("topics: [\n  - oops: {\n", tmp_path)
    assert "not valid YAML" in str(error) and error.line is not None


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(tmp_path / "absent.yaml")
