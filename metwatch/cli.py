"""The ``metwatch`` command: run | poll --once | classify | replay | rules check |
sources | config | db upgrade | healthcheck.

Each command builds what it needs through ``metwatch.app`` or the stage
functions; errors from metwatch become one clear line on stderr and exit 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx
from ruamel.yaml import YAML
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from bot.notifier import ConsoleNotifier
from classifiers.match import explain_item, match_item
from classifiers.rules import RuleSet, load_rules
from metwatch.app import CONSOLE_CHAT_ID, Service, utc_now
from metwatch.backtest import BacktestReport
from metwatch.backtest import backtest as run_backtest
from metwatch.errors import MetwatchError
from metwatch.logs import configure_logging
from metwatch.models import Item, RawEntry, SourceSpec
from metwatch.settings import Settings, describe, load_settings
from watchers.article import article_from_text
from watchers.normalise import normalise


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except MetwatchError as e:
        click.echo(f"metwatch: {e}", err=True)
        sys.exit(2)


def _settings(rules: str | None = None) -> Settings:
    with _errors():
        settings = load_settings(**({"rules_path": Path(rules)} if rules else {}))
    configure_logging(settings.log_level, [settings.token or ""])
    return settings


@click.group(invoke_without_command=True)
@click.version_option(package_name="metwatch")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Watch news sources for coverage of tracked findings; tell Telegram subscribers."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@cli.command()
@click.option("--rules", type=click.Path(), help="Rules file (default: METWATCH_RULES_PATH).")
def run(rules: str | None) -> None:
    """Poll sources on schedule and deliver alerts until SIGTERM/Ctrl-C (the main job)."""
    settings = _settings(rules)
    with _errors():
        asyncio.run(_run_until_signal(Service(settings)))


async def _run_until_signal(service: Service) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.run(stop)


@cli.command()
@click.option("--once", is_flag=True, required=True, help="One pass over all sources, then exit.")
@click.option("--rules", type=click.Path(), help="Rules file (default: METWATCH_RULES_PATH).")
def poll(once: bool, rules: str | None) -> None:
    """Poll every source once, deliver what was flagged, print a summary."""
    settings = _settings(rules)
    with _errors():
        asyncio.run(_poll_once(Service(settings)))


async def _poll_once(service: Service) -> None:
    try:
        results = await service.pipeline.tick(everything=True)
        report = await service.deliverer.drain()
    finally:
        await service.close()
    for r in results:
        if isinstance(r.value, MetwatchError):
            click.echo(f"{r.source_id}: FAILED: {r.value}", err=True)
        elif r.value is None:
            click.echo(f"{r.source_id}: not modified", err=True)
        else:
            click.echo(
                f"{r.source_id}: {len(r.value.new_items)} new, {len(r.value.flagged)} flagged",
                err=True,
            )
    click.echo(f"delivered {report.sent} new, {report.edited} updated", err=True)


def _read_article(source: str) -> tuple[str, str | None]:
    """Text of FILE, URL or '-' (stdin), and the link when it came from a URL."""
    if source == "-":
        return sys.stdin.read(), None
    if source.startswith(("http://", "https://")):
        try:
            response = httpx.get(source, follow_redirects=True, timeout=20)
            response.raise_for_status()
        except httpx.HTTPError as e:
            raise click.ClickException(f"cannot fetch {source}: {e}") from e
        return response.text, source
    try:
        return Path(source).read_text(encoding="utf-8"), None
    except OSError as e:
        raise click.ClickException(f"cannot read {source}: {e.strerror}") from e


def _as_item(text: str, link: str | None, outlet: str = "input", **kw: Any) -> Item:
    entry = article_from_text(text, link=link, **kw)
    spec = SourceSpec("cli", outlet, "feed", link or "stdin", 3600)
    return normalise(entry, spec, utc_now())


@cli.command()
@click.argument("article")
@click.option("--rules", type=click.Path(), help="Rules file (default: METWATCH_RULES_PATH).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--explain", is_flag=True, help="Show why each finding matched or not.")
def classify(article: str, rules: str | None, as_json: bool, explain: bool) -> None:
    """Print the findings and evidence for one article (FILE, URL or - for stdin)."""
    settings = _settings(rules)
    with _errors():
        ruleset = load_rules(settings.rules_path)
    text, link = _read_article(article)
    item = _as_item(text, link)
    explanations = explain_item(item, ruleset, detailed=explain)
    matches = match_item(item, ruleset)
    if as_json:
        findings = [
            {"id": m.finding_id, "title": m.title, "score": m.score, "topic": m.topic_id,
             "evidence": [{"sentence": e.sentence, "start": e.start, "end": e.end}
                          for e in m.evidence]}
            for m in matches if not m.topic_only
        ]  # fmt: skip
        topics = sorted({m.topic_id for m in matches})
        click.echo(json.dumps({"title": item.title, "findings": findings, "topics": topics},
                              ensure_ascii=False, indent=2))  # fmt: skip
        return
    click.echo(f"{item.title}")
    if not matches:
        click.echo("  no tracked finding or topic matched")
    for m in matches:
        label = "topic" if m.topic_only else "finding"
        click.echo(f"  {label} {m.finding_id} ({m.title}), score {m.score:g}")
        for e in m.evidence:
            click.echo(f"    “{e.sentence}” [{e.start}:{e.end}]")
    if explain:
        for x in explanations:
            mark = "MATCH" if x.matched else "no"
            click.echo(f"  [{mark}] {'topic' if x.is_topic else 'finding'} {x.id}: {x.reason}")
            for c in x.clauses:
                click.echo(f"      {c.kind:4} {'hit ' if c.hit else 'miss'} {c.text}")


@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--rules", type=click.Path(), help="Rules file (default: METWATCH_RULES_PATH).")
def replay(directory: str, rules: str | None) -> None:
    """Run the pipeline over local article files and print what subscribers would get."""
    settings = _settings(rules)
    with tempfile.TemporaryDirectory() as tmp, _errors():
        replay_settings = settings.model_copy(
            update={"database_url": f"sqlite:///{tmp}/replay.db", "telegram_token": None}
        )
        asyncio.run(_replay(Service(replay_settings), _replay_articles(Path(directory))))


async def _replay(service: Service, articles: list[tuple[SourceSpec, RawEntry]]) -> None:
    sent = edited = 0
    try:
        for spec, entry in articles:
            service.pipeline.ingest(spec, [entry])
            report = await service.deliverer.drain()
            sent, edited = sent + report.sent, edited + report.edited
    finally:
        await service.close()
    click.echo(
        f"{len(articles)} articles replayed: {sent} alerts, {edited} updates to them", err=True
    )


def _replay_articles(directory: Path) -> list[tuple[SourceSpec, RawEntry]]:
    """Article files of ``directory`` with their seeds.yaml metadata, if any."""
    meta = _seed_metadata(directory)
    articles = []
    for path in sorted(p for p in directory.iterdir() if p.suffix in (".txt", ".html", ".htm")):
        info = meta.get(path.name, {})
        day = info.get("date")
        spec = SourceSpec("replay", info.get("outlet") or path.stem, "feed", str(path), 3600)
        entry = article_from_text(
            path.read_text(encoding="utf-8"), headline=info.get("headline"),
            published=datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None,
        )  # fmt: skip
        articles.append((spec, entry))
    return articles


def _seed_metadata(directory: Path) -> dict[str, dict[str, Any]]:
    path = directory / "seeds.yaml"
    if not path.exists():
        return {}
    entries = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or []
    return {e["file"]: e for e in entries}


@cli.command()
@click.option("--rules", "new_rules", type=click.Path(exists=True), help="Proposed rules file.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Only items seen since DATE.")
@click.option("--seeds", type=click.Path(file_okay=False), default="seeds", show_default=True,
              help="Also run over the articles in this folder (skipped if absent).")  # fmt: skip
def backtest(new_rules: str | None, since: datetime | None, seeds: str) -> None:
    """Re-run the rules over stored items and seeds; with --rules, show what a change does."""
    settings = _settings()
    with _errors():
        current = load_rules(settings.rules_path)
        proposed = load_rules(new_rules) if new_rules else None
        service = Service(settings, rules=current)
    since_utc = since.replace(tzinfo=UTC) if since else None
    seed_items = (
        [normalise(e, spec, utc_now()) for spec, e in _replay_articles(Path(seeds))]
        if Path(seeds).is_dir()
        else []
    )
    total = service.store.count_items(since_utc) + len(seed_items)
    items = itertools.chain(service.store.iter_items(since_utc), seed_items)
    with click.progressbar(length=total, label="backtest", file=sys.stderr) as bar:
        report = run_backtest(items, current, proposed, progress=bar.update)
    asyncio.run(service.close())
    _print_backtest(report, current, proposed)


def _print_backtest(report: BacktestReport, current: RuleSet, proposed: RuleSet | None) -> None:
    click.echo(f"{report.items} items")
    ids = [f.id for f in current.findings] + [t.id for t in current.topics]
    if proposed is not None:
        ids += [i for i in [f.id for f in proposed.findings] if i not in ids]
    for finding_id in ids:
        line = f"  {finding_id:32} {report.current[finding_id]:6}"
        if proposed is not None:
            line += f" -> {report.proposed[finding_id]:6}"
        click.echo(line)
    for label, diffs in (("would ADD", report.added), ("would DROP", report.dropped)):
        for d in diffs:
            quote = d.match.evidence[0].sentence if d.match.evidence else ""
            click.echo(f"{label} {d.finding_id}: {d.item.title} <{d.item.url or d.item.outlet}>")
            click.echo(f"    “{quote}”")


@cli.group()
def rules() -> None:
    """Work with the watch rules file."""


@rules.command("check")
@click.argument("path", required=False, type=click.Path())
def rules_check(path: str | None) -> None:
    """Validate the rules file; print every problem with file, line and reason."""
    settings = _settings(path)
    with _errors():
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


@cli.command()
def sources() -> None:
    """Each source's health: last success, last error, next poll, items seen."""
    settings = _settings()
    with _errors():
        service = Service(settings)
        health = service.store.source_health()
        asyncio.run(service.close())
    for h in health:
        state = "FAILING" if h.failing else ("ok" if not h.error_count else "retrying")
        click.echo(f"{h.id}  [{state}]  {h.name}  {h.url}")
        click.echo(
            f"    last success: {_when(h.last_success)}   next poll: {_when(h.next_poll)}   "
            f"items seen: {h.items_seen}"
        )
        if h.last_error:
            click.echo(f"    last error ({h.error_count} in a row): {h.last_error}")


@cli.command()
@click.option("--limit", default=10, show_default=True, help="How many stories.")
def stories(limit: int) -> None:
    """Recent stories with their outlets and findings, newest first."""
    settings = _settings()
    from metwatch.store import open_store

    with _errors():
        store = open_store(settings.database_url)
        recent = store.recent_stories(limit)
        store.engine.dispose()
    if not recent:
        click.echo("no stories yet")
    for story in recent:
        click.echo(f"#{story.id}  {story.headline}")
        click.echo(f"    first seen {_when(story.first_seen)}, revision {story.revision}")
        click.echo(f"    outlets: {', '.join(link.outlet for link in story.links)}")
        click.echo(f"    findings: {', '.join(sorted(story.finding_ids)) or '(topic only)'}")


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "never"


@cli.command()
def config() -> None:
    """Print the effective settings (secrets masked)."""
    settings = _settings()
    for name, value in describe(settings).items():
        click.echo(f"{name}={value}")


@cli.command("export")
@click.argument("output", type=click.File("w"), default="-")
def export_state(output: Any) -> None:
    """Write subscribers, what they follow and the rules version as JSON (a backup)."""
    settings = _settings()
    from metwatch.store import open_store

    with _errors():
        store = open_store(settings.database_url)
        data = {
            "format": "metwatch-export/1",
            "rules_version": store.get_meta("rules_version"),
            "subscribers": store.export_subscribers(),
        }
        store.engine.dispose()
    json.dump(data, output, indent=2, ensure_ascii=False)
    output.write("\n")


@cli.command("import")
@click.argument("source", type=click.File("r"))
def import_state(source: Any) -> None:
    """Restore subscribers and what they follow from an export."""
    settings = _settings()
    from metwatch.store import open_store

    try:
        data = json.load(source)
    except json.JSONDecodeError as e:
        raise click.ClickException(f"not a metwatch export: {e}") from e
    if not isinstance(data, dict) or data.get("format") != "metwatch-export/1":
        raise click.ClickException("not a metwatch export (format metwatch-export/1 expected)")
    with _errors():
        store = open_store(settings.database_url)
        count = store.import_subscribers(data["subscribers"])
        store.engine.dispose()
    click.echo(f"imported {count} subscribers (exported under rules {data.get('rules_version')})")


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations (run automatically on start)."""
    settings = _settings()
    from metwatch.store import open_store

    with _errors():
        open_store(settings.database_url).engine.dispose()
    click.echo("database is up to date")


@cli.command()
def healthcheck() -> None:
    """Exit 0 when the running service's /healthz is healthy (container HEALTHCHECK)."""
    settings = _settings()
    host = "127.0.0.1" if settings.health_host in ("0.0.0.0", "::") else settings.health_host  # noqa: S104
    url = f"http://{host}:{settings.health_port}/healthz"
    try:
        answer = httpx.get(url, timeout=5)
    except httpx.HTTPError as e:
        click.echo(f"unhealthy: cannot reach {url}: {e}", err=True)
        sys.exit(1)
    click.echo(answer.text)
    if answer.status_code != 200:
        sys.exit(1)


def main() -> None:
    cli()


__all__ = ["CONSOLE_CHAT_ID", "ConsoleNotifier", "cli", "main"]
