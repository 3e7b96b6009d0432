"""Rules files for tests: the default findings, with sources pointing at local servers."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RULES_PATH


def write_rules(tmp_path: Path, sources: list[dict[str, object]]) -> Path:
    """The default watch rules with ``sources`` replaced; returns the file's path."""
    text = RULES_PATH.read_text(encoding="utf-8")
    head = text[: text.index("\nsources:")]
    lines = ["", "sources:"]
    for source in sources:
        first = True
        for key, value in source.items():
            lines.append(f"  {'- ' if first else '  '}{key}: {value!r}".replace("'", '"'))
            first = False
    path = tmp_path / "watch-rules.yaml"
    path.write_text(head + "\n".join(lines) + "\n", encoding="utf-8")
    return path
