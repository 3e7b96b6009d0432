"""The metwatch command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import ROOT
from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer, closed_port_url
from tests.support.feeds import FeedItem, rss
from watchers.article import article_from_text

SEED_002 = ROOT / "seeds" / "002_e1ad28f5b1d59acf.txt"


def metwatch(
    *args: str, cwd: Path, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("METWATCH_")}
    # No full-text fetches: the test feeds link to example.com, and a subprocess has no
    # loopback guard.
    environ.update({"METWATCH_RULES_PATH": str(ROOT / "watch-rules.yaml"),
                    "METWATCH_FULLTEXT_MIN_CHARS": "0", **env})  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "metwatch", *args],
        cwd=cwd, env=environ, input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_classify_json(tmp_path: Path) -> None:
    result = metwatch("classify", "--json", str(SEED_002), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    ids = {f["id"] for f in data["findings"]}
    assert "iic-nfa-rate" in ids and "unvisited-since-2017" in ids
    assert data["topics"] == ["met-inspection"]
    nfa = next(f for f in data["findings"] if f["id"] == "iic-nfa-rate")
    assert "60 per cent" in nfa["evidence"][0]["sentence"] and nfa["score"] >= 1


def test_classify_html_from_stdin_with_explain(tmp_path: Path) -> None:
    page = (
        "<html><head><title>Met criticised</title></head><body><article>"
        "<h1>Met criticised</h1><p>The Metropolitan Police has no crime prevention strategy, "
        "the inspectorate said in its report on Thursday, adding that it had no plan to "
        "develop one.</p></article></body></html>"
    )
    result = metwatch("classify", "--explain", "-", cwd=tmp_path, stdin=page)
    assert result.returncode == 0, result.stderr
    assert "finding no-prevention-strategy" in result.stdout
    assert "[no] finding announced-visits:" in result.stdout


def test_replay_seeds_makes_one_story_then_edits(tmp_path: Path) -> None:
    result = metwatch("replay", str(ROOT / "seeds"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("[alert #") == 1
    assert result.stdout.count("[update to alert #1]") == 4
    assert "Daily Mail" in result.stdout
    assert "No crime prevention strategy" in result.stdout
    assert "5 articles replayed: 1 alerts, 4 updates to them" in result.stderr


def test_rules_check_reports_file_line_and_reason(tmp_path: Path) -> None:
    good = metwatch("rules", "check", cwd=tmp_path)
    assert good.returncode == 0 and "ok (version" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (ROOT / "watch-rules.yaml")
        .read_text()
        .replace("    title: Met inspections", "    titel: Met inspections")
    )
    result = metwatch("rules", "check", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr and "unknown key 'topics.0.titel'" in result.stderr


def test_wrong_setting_names_the_variable(tmp_path: Path) -> None:
    result = metwatch("config", cwd=tmp_path, METWATCH_TICK_SECONDS="soon")
    assert result.returncode == 2
    assert "METWATCH_TICK_SECONDS" in result.stderr


def test_config_masks_the_token(tmp_path: Path) -> None:
    token = "987654:secret-token-for-config"
    result = metwatch("config", cwd=tmp_path, METWATCH_TELEGRAM_TOKEN=token)
    assert result.returncode == 0
    assert "METWATCH_TELEGRAM_TOKEN=********" in result.stdout
    assert token not in result.stdout + result.stderr


def test_poll_once_without_network_reports_each_source(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.serve("/ok.xml", (ROOT / "tests" / "data" / "feeds" / "met-rss.xml").read_bytes())
    feed_server.serve("/new-home.xml", rss([FeedItem(title="Moved", guid="m")]))
    feed_server.redirect("/old-home.xml", "/new-home.xml", status=301)
    rules = write_rules(tmp_path, [
        {"id": "unreachable", "name": "Gone", "url": closed_port_url("/feed.xml")},
        {"id": "local", "name": "Local", "url": feed_server.url("/ok.xml")},
        {"id": "moved", "name": "Moved", "url": feed_server.url("/old-home.xml")},
    ])  # fmt: skip
    result = metwatch("poll", "--once", cwd=tmp_path, METWATCH_RULES_PATH=str(rules))
    assert result.returncode == 0, result.stderr
    assert "unreachable: FAILED: cannot connect" in result.stderr
    assert "local: 3 new" in result.stderr
    sources = metwatch("sources", cwd=tmp_path, METWATCH_RULES_PATH=str(rules))
    assert "last error (1 in a row): cannot connect" in sources.stdout
    assert "items seen: 3" in sources.stdout
    new_home = feed_server.url("/new-home.xml")
    assert f"moved permanently to {new_home}: update the rules file" in sources.stdout
    listed = metwatch("sources", "--json", cwd=tmp_path, METWATCH_RULES_PATH=str(rules))
    health = {h["id"]: h for h in json.loads(listed.stdout)}
    assert health["unreachable"]["state"] == "retrying"
    assert health["unreachable"]["last_error"].startswith("cannot connect")
    assert health["unreachable"]["last_success"] is None
    assert health["local"]["items_seen"] == 3 and health["local"]["errors_in_a_row"] == 0
    assert health["local"]["gap_at"] is None and health["local"]["gap_entries"] is None
    assert health["local"]["gap_after_s"] is None
    assert datetime.fromisoformat(health["local"]["last_success"]).utcoffset() is not None
    assert health["moved"]["moved_to"] == new_home
    assert health["moved"]["url"] == feed_server.url("/old-home.xml")

    # Again at once, as cron would: nothing is due, so no site is asked again.
    again = metwatch("poll", "--once", cwd=tmp_path, METWATCH_RULES_PATH=str(rules))
    assert again.returncode == 0, again.stderr
    assert "3 source(s) not due yet (next at " in again.stderr
    assert "local:" not in again.stderr and feed_server.hits("/ok.xml") == 1
    forced = metwatch("poll", "--once", "--all", cwd=tmp_path, METWATCH_RULES_PATH=str(rules))
    assert forced.returncode == 0, forced.stderr
    assert "local: 0 new" in forced.stderr and "unreachable: FAILED" in forced.stderr
    assert "not due yet" not in forced.stderr and feed_server.hits("/ok.xml") == 2


def test_backtest_shows_what_a_rules_change_adds_and_drops(tmp_path: Path) -> None:
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(
        (ROOT / "watch-rules.yaml").read_text().replace('        - "crime allocation"\n', "")
        .replace('        - "allocation policy"\n', "")
    )  # fmt: skip
    result = metwatch(
        "backtest", "--rules", str(stricter), "--seeds", str(ROOT / "seeds"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "5 items" in result.stdout
    assert re.search(r"crime-allocation\s+2 ->\s+1", result.stdout)
    assert "would DROP crime-allocation: THE Metropolitan Police" in result.stdout
    assert "would ADD" not in result.stdout


def test_export_then_import_into_a_new_database(tmp_path: Path) -> None:
    first = {"METWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    from metwatch.store import open_store

    store = open_store(first["METWATCH_DATABASE_URL"])
    store.subscribe(
        -100123, ["announced-visits", "met-inspection"], datetime.now(UTC), chat_type="supergroup"
    )
    store.subscribe(7, ["met-inspection"], datetime.now(UTC))
    store.unsubscribe(7, reason="blocked")
    store.engine.dispose()

    exported = metwatch("export", str(tmp_path / "backup.json"), cwd=tmp_path, **first)
    assert exported.returncode == 0, exported.stderr
    second = {"METWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}"}
    imported = metwatch("import", str(tmp_path / "backup.json"), cwd=tmp_path, **second)
    assert imported.returncode == 0 and "imported 2 subscribers" in imported.stdout

    restored = open_store(second["METWATCH_DATABASE_URL"])
    assert restored.follows(-100123) == {"announced-visits", "met-inspection"}
    assert restored.is_active(-100123) and not restored.is_active(7)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert "not a metwatch export" in metwatch("import", str(bad), cwd=tmp_path, **second).stderr


def test_stories_lists_outlets_and_findings(tmp_path: Path) -> None:
    db = {"METWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    assert "no stories yet" in metwatch("stories", cwd=tmp_path, **db).stdout
    from classifiers.rules import load_rules
    from metwatch.models import SourceSpec
    from metwatch.pipeline import Pipeline
    from metwatch.store import open_store

    store = open_store(db["METWATCH_DATABASE_URL"])
    pipeline = Pipeline(
        store, None, load_rules(ROOT / "watch-rules.yaml"), clock=lambda: datetime.now(UTC)
    )  # type: ignore[arg-type]
    for name, outlet in (
        ("001_eb7dfda9019dc2e2.txt", "Morning Star"),
        ("004_b5d8470313265fe5.txt", "Daily Mail"),
    ):
        entry = article_from_text((ROOT / "seeds" / name).read_text())
        pipeline.ingest(
            SourceSpec(outlet.lower().replace(" ", "-"), outlet, "feed", "file:", 3600), [entry]
        )
    store.engine.dispose()

    out = metwatch("stories", cwd=tmp_path, **db).stdout
    assert out.count("#1 ") == 1 and "#2" not in out
    assert "outlets: Morning Star, Daily Mail" in out
    assert "no-prevention-strategy" in out and "iic-nfa-rate" in out


def test_rules_check_reports_follows_the_rules_no_longer_define(tmp_path: Path) -> None:
    db = {"METWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}"}
    from metwatch.store import open_store

    store = open_store(db["METWATCH_DATABASE_URL"])
    store.subscribe(5, ["announced-visits", "met-inspection"], datetime.now(UTC))
    store.engine.dispose()
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(
        (ROOT / "watch-rules.yaml")
        .read_text()
        .replace("id: announced-visits", "id: visits-announced")
    )
    result = metwatch("rules", "check", str(renamed), cwd=tmp_path, **db)
    assert result.returncode == 2
    assert (
        "1 subscriber(s) follow 'announced-visits', which these rules do not define"
        in result.stderr
    )
