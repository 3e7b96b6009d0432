"""What every metwatch command shares: settings loading and error reporting."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from metwatch.errors import MetwatchError
from metwatch.logs import configure_logging
from metwatch.settings import Settings, load_settings
from metwatch.terminal import printable, printable_json

RULES_OPTION = click.option(
    "--rules", type=click.Path(), help="Rules file (default: METWATCH_RULES_PATH)."
)


def echo(message: str = "", *, err: bool = False, nl: bool = True) -> None:
    """``click.echo`` for lines that may hold text from feeds or sites
    (``metwatch.terminal``)."""
    click.echo(printable(message), err=err, nl=nl)


def echo_json(value: object) -> None:
    """``value`` as indented JSON, printable as ``echo`` makes text and still valid."""
    click.echo(printable_json(value))


@contextlib.contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except MetwatchError as e:
        echo(f"metwatch: {e}", err=True)
        sys.exit(2)


def settings_from_env(rules: str | None = None) -> Settings:
    """Settings from the environment (a bad value exits 2 naming it); logging set up."""
    with errors():
        settings = load_settings(**({"rules_path": Path(rules)} if rules else {}))
    configure_logging(settings.log_level, [settings.token or ""])
    return settings
