"""``metwatch rules check``: validate the rules file (and what subscribers follow)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from classifiers.rules import RuleSet, load_rules
from metwatch.cli.common import errors, settings_from_env
from metwatch.settings import Settings


@click.group()
def rules() -> None:
    """Work with the watch rules file."""


@rules.command("check")
@click.argument("path", required=False, type=click.Path())
def rules_check(path: str | None) -> None:
    """Validate the rules file; print every problem with file, line and reason."""
    settings = settings_from_env(path)
    with errors():
        ruleset: RuleSet = load_rules(settings.rules_path)
        orphans = _orphaned_follows(settings, ruleset)
    for target, chats in sorted(orphans.items()):
        click.echo(
            f"{ruleset.path}: {chats} subscriber(s) follow {target!r}, which these rules do "
            f"not define (keep the id, or they stop getting its stories)",
            err=True,
        )
    if orphans:
        sys.exit(2)
    click.echo(
        f"{ruleset.path}: ok (version {ruleset.version}): {len(ruleset.topics)} topics, "
        f"{len(ruleset.findings)} findings, {len(ruleset.sources)} sources"
    )


def _orphaned_follows(settings: Settings, ruleset: RuleSet) -> dict[str, int]:
    """Followed ids the rules no longer define, if the database exists yet."""
    from metwatch.store import SqlStore, make_engine

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return {}  # no database yet: nothing is followed (and none is created)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            if "subscriptions" not in inspect(connection).get_table_names():
                return {}
        followed = SqlStore(engine).followed_targets()
    finally:
        engine.dispose()
    return {t: n for t, n in followed.items() if t not in ruleset.follow_targets}
