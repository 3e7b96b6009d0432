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


def _with_within(value: str, *, on_topic: bool = False) -> str:
    anchor = (
        "    require: [met]\n" if on_topic else "    description: Visits announced in advance.\n"
    )
    return MINIMAL.replace(anchor, f"{anchor}    require_within: {value}\n")


@pytest.mark.parametrize(
    ("value", "before", "after"),
    [("40", 40, 40), ("0", 0, 0), ("sentence", "sentence", "sentence"),
     ("{before: 200, after: sentence}", 200, "sentence")],
    ids=["words", "zero", "sentence", "before-after"],
)  # fmt: skip
def test_require_within_forms_parse(value: str, before: object, after: object) -> None:
    window = parse_rules(_with_within(value).encode(), "rules.yaml").findings[0].require_within
    assert window is not None and (window.before, window.after) == (before, after)


def test_require_within_defaults_to_anywhere_and_is_inherited_from_the_topic() -> None:
    assert parse_rules(MINIMAL.encode(), "rules.yaml").findings[0].require_within is None
    rules = parse_rules(_with_within("30", on_topic=True).encode(), "rules.yaml")
    topic, finding = rules.topics[0], rules.findings[0]
    assert topic.require_within == finding.require_within
    assert str(finding.require_within) == "30 words"
    both = _with_within("sentence", on_topic=True).replace(
        "    description: Visits announced in advance.\n",
        "    description: Visits announced in advance.\n    require_within: 5\n",
    )
    assert str(parse_rules(both.encode(), "rules.yaml").findings[0].require_within) == "5 words"


@pytest.mark.parametrize(
    ("value", "column", "reason"),
    [("paragraph", 5, "findings.0.require_within: 'paragraph' is neither a number of words"),
     ("-3", 5, "findings.0.require_within: -3 is neither"),
     ("true", 5, "findings.0.require_within: True is neither"),
     ("{before: 40, after: para}", 34, "findings.0.require_within.after: 'para' is neither"),
     ("{before: 40}", 5, "missing field 'findings.0.require_within.after'"),
     ("{before: 4, after: 5, near: 3}", 43, "unknown key 'findings.0.require_within.near'")],
    ids=["unknown-word", "negative", "bool", "bad-side", "missing-side", "unknown-side"],
)  # fmt: skip
def test_bad_require_within_is_a_positioned_error(
    value: str, column: int, reason: str, tmp_path: Path
) -> None:
    error = _error(_with_within(value), tmp_path)
    assert (error.line, error.column) == (13, column)
    assert str(error).startswith(f"{tmp_path / 'rules.yaml'}:13:{column}: {reason}")
    assert str(error).endswith(
        "(write a number of words such as 40, 'sentence', or {before: 200, after: sentence})"
    )


def test_require_within_without_require_is_refused(tmp_path: Path) -> None:
    text = _with_within("20").replace("    require: [met]\n", "")
    error = _error(text, tmp_path)
    assert "'require_within' has no effect without 'require' groups" in str(error)
    assert (error.line, error.column) == (12, 5)
