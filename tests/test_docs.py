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


def _commands(group: click.Group, ctx: click.Context, prefix: str = "metwatch") -> list[str]:
    names = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            names += _commands(command, ctx, f"{prefix} {name}")
        else:
            names.append(f"{prefix} {name}")
    return names


def test_every_cli_command_is_in_the_readme() -> None:
    commands = _commands(cli, click.Context(cli))
    assert len(commands) >= 13
    for command in commands:
        assert f"`{command}" in README, command
