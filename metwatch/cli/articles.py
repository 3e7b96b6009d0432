"""Commands over articles and rules: classify, replay and backtest."""

from __future__ import annotations

import asyncio
import itertools
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx
from ruamel.yaml import YAML

from classifiers.match import explain_item, match_item
from classifiers.rules import RuleSet, load_rules
from metwatch.app import Service, utc_now
from metwatch.backtest import BacktestReport
from metwatch.backtest import backtest as run_backtest
from metwatch.cli.common import RULES_OPTION, echo, echo_json, errors, settings_from_env
from metwatch.models import Item, RawEntry, SourceSpec
from watchers.article import article_from_text
from watchers.normalise import normalise


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


@click.command()
@click.argument("article")
@RULES_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--explain", is_flag=True, help="Show why each finding matched or not.")
def classify(article: str, rules: str | None, as_json: bool, explain: bool) -> None:
    """Print the findings and evidence for one article (FILE, URL or - for stdin)."""
    settings = settings_from_env(rules)
    with errors():
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
        echo_json({"title": item.title, "findings": findings, "topics": topics})
        return
    echo(f"{item.title}")
    if not matches:
        echo("  no tracked finding or topic matched")
    for m in matches:
        label = "topic" if m.topic_only else "finding"
        echo(f"  {label} {m.finding_id} ({m.title}), score {m.score:g}")
        for e in m.evidence:
            echo(f"    “{e.sentence}” [{e.start}:{e.end}]")
    if explain:
        for x in explanations:
            mark = "MATCH" if x.matched else "no"
            echo(f"  [{mark}] {'topic' if x.is_topic else 'finding'} {x.id}: {x.reason}")
            for c in x.clauses:
                echo(f"      {c.kind:4} {'hit ' if c.hit else 'miss'} {c.text}")


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@RULES_OPTION
def replay(directory: str, rules: str | None) -> None:
    """Run the pipeline over local article files and print what subscribers would get."""
    settings = settings_from_env(rules)
    with tempfile.TemporaryDirectory() as tmp, errors():
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
    echo(f"{len(articles)} articles replayed: {sent} alerts, {edited} updates to them", err=True)


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


@click.command()
@click.option("--rules", "new_rules", type=click.Path(exists=True), help="Proposed rules file.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Only items seen since DATE.")
@click.option("--seeds", type=click.Path(file_okay=False), default="seeds", show_default=True,
              help="Also run over the articles in this folder (skipped if absent).")  # fmt: skip
def backtest(new_rules: str | None, since: datetime | None, seeds: str) -> None:
    """Re-run the rules over stored items and seeds; with --rules, show what a change does."""
    settings = settings_from_env()
    with errors():
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
    echo(f"{report.items} items")
    ids = [f.id for f in current.findings] + [t.id for t in current.topics]
    if proposed is not None:
        ids += [i for i in [f.id for f in proposed.findings] if i not in ids]
    for finding_id in ids:
        line = f"  {finding_id:32} {report.current[finding_id]:6}"
        if proposed is not None:
            line += f" -> {report.proposed[finding_id]:6}"
        echo(line)
    for label, diffs in (("would ADD", report.added), ("would DROP", report.dropped)):
        for d in diffs:
            quote = d.match.evidence[0].sentence if d.match.evidence else ""
            echo(f"{label} {d.finding_id}: {d.item.title} <{d.item.shown_link or d.item.outlet}>")
            echo(f"    “{quote}”")
