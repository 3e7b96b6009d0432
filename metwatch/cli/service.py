"""Commands that run or inspect the service: run, poll, sources, stories, config,
export, import and db upgrade."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import datetime, timedelta
from typing import Any

import click

from metwatch.app import Service
from metwatch.cli.common import RULES_OPTION, echo, echo_json, errors, settings_from_env
from metwatch.durations import duration
from metwatch.errors import MetwatchError
from metwatch.models import SourceHealth
from metwatch.settings import describe
from metwatch.store import open_store
from watchers import schedule


@click.command()
@RULES_OPTION
def run(rules: str | None) -> None:
    """Poll sources on schedule and deliver alerts until SIGTERM/Ctrl-C (the main job)."""
    settings = settings_from_env(rules)
    with errors():
        asyncio.run(_run_until_signal(Service(settings)))


async def _run_until_signal(service: Service) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.run(stop)


#: Sources one ``poll --once`` polls at most (the rest are due at the next run).
ONCE_LIMIT = 10_000


@click.command()
@click.option("--once", is_flag=True, required=True, help="One pass, then exit.")
@click.option(
    "--all", "everything", is_flag=True,
    help="Poll every source now, also those not due: the interval, a backoff and a "
    "site's Retry-After are overridden (for trying things out, not for cron).",
)  # fmt: skip
@RULES_OPTION
def poll(once: bool, everything: bool, rules: str | None) -> None:
    """Poll the sources that are due (and new ones) once, deliver what was flagged,
    print a summary. Run from cron, each source keeps its own schedule."""
    settings = settings_from_env(rules)
    with errors():
        asyncio.run(_poll_once(Service(settings), everything=everything))


async def _poll_once(service: Service, *, everything: bool) -> None:
    try:
        if not everything:
            within = timedelta(seconds=schedule.FIRST_POLL_WITHIN)
            service.store.make_new_due(service.clock(), within)
        results = await service.pipeline.tick(everything=everything, limit=ONCE_LIMIT)
        report = await service.deliverer.drain()
        waiting = _not_due(service, {r.source_id for r in results})
    finally:
        await service.close()
    for r in results:
        if isinstance(r.value, MetwatchError):
            echo(f"{r.source_id}: FAILED: {r.value}", err=True)
        elif r.value is None:
            echo(f"{r.source_id}: not modified", err=True)
        else:
            echo(
                f"{r.source_id}: {len(r.value.new_items)} new, {len(r.value.flagged)} flagged",
                err=True,
            )
    if waiting:
        echo(waiting, err=True)
    echo(f"delivered {report.sent} new, {report.edited} updated", err=True)


def _not_due(service: Service, polled: set[str]) -> str:
    """A line on the enabled sources this run left alone: not due yet."""
    enabled = {s.id for s in service.rules.sources}
    later = [h.next_poll for h in service.store.source_health()
             if h.id in enabled and h.id not in polled and h.next_poll is not None]  # fmt: skip
    if not later:
        return ""
    return (
        f"{len(later)} source(s) not due yet (next at {_when(min(later))}); --all polls them now"
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object a source.")
def sources(as_json: bool) -> None:
    """Each source's health: last success, last error, next poll, items seen."""
    settings = settings_from_env()
    with errors():
        service = Service(settings)
        health = service.store.source_health()
        now = service.clock()
        asyncio.run(service.close())
    if as_json:
        # For monitoring scripts: times in ISO 8601 (UTC), absent ones null.
        echo_json([_health_json(h) for h in health])
        return
    for h in health:
        echo(f"{h.id}  [{h.state}]  {h.name}  {h.url}")
        echo(
            f"    last success: {_when(h.last_success)}   next poll: {_when(h.next_poll)}   "
            f"items seen: {h.items_seen}"
        )
        if h.moved_to:
            echo(f"    moved permanently to {h.moved_to}: update the rules file")
        if h.gap_at is not None and h.recent_gap(now):
            after = f", {duration(h.gap_after)} after the poll before" if h.gap_after else ""
            echo(
                f"    possible gap: the poll at {_when(h.gap_at)} found all {h.gap_entries} "
                f"entries new{after}, so older ones may have left the feed unseen"
            )
        if h.last_error:
            echo(f"    last error ({h.error_count} in a row): {h.last_error}")


def _health_json(h: SourceHealth) -> dict[str, Any]:
    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at is not None else None

    return {
        "id": h.id, "name": h.name, "url": h.url, "moved_to": h.moved_to, "state": h.state,
        "last_success": iso(h.last_success), "next_poll": iso(h.next_poll),
        "items_seen": h.items_seen, "last_error": h.last_error, "errors_in_a_row": h.error_count,
        "gap_at": iso(h.gap_at), "gap_entries": h.gap_entries, "gap_after_s": h.gap_after,
    }  # fmt: skip


@click.command()
@click.option("--limit", default=10, show_default=True, help="How many stories.")
def stories(limit: int) -> None:
    """Recent stories with their outlets and findings, newest first."""
    settings = settings_from_env()

    with errors():
        store = open_store(settings.database_url)
        recent = store.recent_stories(limit)
        store.engine.dispose()
    if not recent:
        echo("no stories yet")
    for story in recent:
        echo(f"#{story.id}  {story.headline}")
        echo(f"    first seen {_when(story.first_seen)}, revision {story.revision}")
        echo(f"    outlets: {', '.join(link.outlet for link in story.links)}")
        echo(f"    findings: {', '.join(sorted(story.finding_ids)) or '(topic only)'}")


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "never"


@click.command()
def config() -> None:
    """Print the effective settings (secrets masked)."""
    settings = settings_from_env()
    for name, value in describe(settings).items():
        echo(f"{name}={value}")


@click.command("export")
@click.argument("output", type=click.File("w"), default="-")
def export_state(output: Any) -> None:
    """Write subscribers, what they follow and the rules version as JSON (a backup)."""
    settings = settings_from_env()

    with errors():
        store = open_store(settings.database_url)
        data = {
            "format": "metwatch-export/1",
            "rules_version": store.get_meta("rules_version"),
            "subscribers": store.export_subscribers(),
        }
        store.engine.dispose()
    json.dump(data, output, indent=2, ensure_ascii=False)
    output.write("\n")


@click.command("import")
@click.argument("source", type=click.File("r"))
def import_state(source: Any) -> None:
    """Restore subscribers and what they follow from an export."""
    settings = settings_from_env()

    try:
        data = json.load(source)
    except json.JSONDecodeError as e:
        raise click.ClickException(f"not a metwatch export: {e}") from e
    if not isinstance(data, dict) or data.get("format") != "metwatch-export/1":
        raise click.ClickException("not a metwatch export (format metwatch-export/1 expected)")
    with errors():
        store = open_store(settings.database_url)
        count = store.import_subscribers(data["subscribers"])
        store.engine.dispose()
    echo(f"imported {count} subscribers (exported under rules {data.get('rules_version')})")


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations (run automatically on start)."""
    settings = settings_from_env()

    with errors():
        open_store(settings.database_url).engine.dispose()
    echo("database is up to date")
