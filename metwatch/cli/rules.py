"""``metwatch rules``: check the rules file (and what subscribers follow); sources in
and out as OPML, for moving feed lists from and to feed readers."""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import click
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from classifiers.rules import RuleSet, load_rules, parse_rules
from metwatch.cli.common import echo, errors, settings_from_env
from metwatch.errors import RulesError
from metwatch.opml import (
    FEED_KINDS,
    add_to_rules,
    entries_yaml,
    feeds_in_opml,
    opml_of,
    sources_to_add,
)
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
        echo(
            f"{ruleset.path}: {chats} subscriber(s) follow {target!r}, which these rules do "
            f"not define (keep the id, or they stop getting its stories)",
            err=True,
        )
    if orphans:
        sys.exit(2)
    echo(
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


@rules.command("import-opml")
@click.argument("opml_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--rules", "rules_path", type=click.Path(), help="Rules file (default: "
              "METWATCH_RULES_PATH).")  # fmt: skip
@click.option("--interval", default=900, show_default=True, type=click.IntRange(5, 7 * 86400),
              help="Polling interval of the new sources, in seconds.")  # fmt: skip
@click.option("--write", is_flag=True, help="Add them to the rules file (checked first; the "
              "rest of the file is kept as it is). Without it, print them.")  # fmt: skip
def rules_import_opml(opml_file: str, rules_path: str | None, interval: int, write: bool) -> None:
    """Sources from a feed reader's OPML export: the feeds the rules file does not list."""
    settings = settings_from_env(rules_path)
    path = settings.rules_path
    with errors():
        feeds = feeds_in_opml(Path(opml_file).read_bytes(), opml_file)
        text = _read_text(path)
        entries, known = sources_to_add(feeds, text, interval=interval)
        counts = f"{len(feeds)} feeds in {opml_file}, {known} of them listed already"
        if not entries:
            echo(f"{path}: nothing to add ({counts})")
            return
        if not write:
            echo(f"# {len(entries)} new sources ({counts}): add under sources: in {path}")
            echo(entries_yaml(entries), nl=False)
            return
        updated = add_to_rules(text, entries)
        parse_rules(updated.encode(), str(path))  # the new file must load, or nothing changes
        _replace(path, updated)
    echo(f"{path}: added {len(entries)} sources ({counts}); a running metwatch reads "
         "them at its next tick")  # fmt: skip


@rules.command("export-opml")
@click.argument("output", type=click.File("wb"), default="-")
@click.option("--rules", "rules_path", type=click.Path(), help="Rules file (default: "
              "METWATCH_RULES_PATH).")  # fmt: skip
def rules_export_opml(output: BinaryIO, rules_path: str | None) -> None:
    """The feed and search sources as OPML, for a feed reader."""
    settings = settings_from_env(rules_path)
    with errors():
        ruleset = load_rules(settings.rules_path)
    output.write(opml_of(ruleset.sources, "metwatch sources", datetime.now(UTC)))
    others = [s.id for s in ruleset.sources if s.kind not in FEED_KINDS]
    if others:
        echo(f"left out (page and sitemap sources have no feed): {', '.join(others)}",
             err=True)  # fmt: skip


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise RulesError(f"cannot read rules file: {e.strerror}", path=str(path)) from e


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` at once: a reader sees the old file or the new one."""
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)
