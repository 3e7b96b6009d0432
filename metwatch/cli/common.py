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

RULES_OPTION = click.option(
    "--rules", type=click.Path(), help="Rules file (default: METWATCH_RULES_PATH)."
)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except MetwatchError as e:
        click.echo(f"metwatch: {e}", err=True)
        sys.exit(2)


def settings_from_env(rules: str | None = None) -> Settings:
    """Settings from the environment (a bad value exits 2 naming it); logging set up."""
    with errors():
        settings = load_settings(**({"rules_path": Path(rules)} if rules else {}))
    configure_logging(settings.log_level, [settings.token or ""])
    return settings
