"""The README documents every setting and every command (datasette's test_docs idea)."""

from __future__ import annotations

import re

import click

from metwatch.cli import cli
from metwatch.settings import ENV_PREFIX, Settings
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_table() -> None:
    documented = set(re.findall(r"^\| `(METWATCH_[A-Z_]+)` \|", README, re.MULTILINE))
    expected = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert documented == expected


def _commands(group: click.Group, prefix: str = "metwatch") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix} {name}")
        else:
            names.append(f"{prefix} {name}")
    return names


def test_every_cli_command_is_in_the_readme() -> None:
    for command in _commands(cli):
        assert f"`{command}" in README, command
