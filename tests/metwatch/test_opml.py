"""OPML in and out: feed lists from feed readers into the rules file, and back."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from classifiers.rules import parse_rules
from metwatch.models import SourceSpec
from metwatch.opml import (
    OpmlError,
    OpmlFeed,
    add_to_rules,
    entries_yaml,
    feeds_in_opml,
    opml_of,
    sources_to_add,
)
from tests.conftest import RULES_PATH
from tests.test_cli import metwatch

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><head><title>Reader export</title></head><body>
  <outline text="Police">
    <outline type="rss" text="BBC London" xmlUrl="https://feeds.bbci.co.uk/news/england/london/rss.xml"/>
    <outline text="Nested"><outline type="rss" title="Police &quot;Oversight&quot;" text="ignored"
      xmlUrl=" https://example.org/police.xml "/></outline>
  </outline>
  <outline type="rss" text="  Le Monde \xe2\x80\x94   Soci\xc3\xa9t\xc3\xa9 " xmlUrl="https://www.lemonde.fr/societe/rss.xml"/>
  <outline type="rss" text="" xmlUrl="https://example.net/feed"/>
  <outline type="rss" text="Again" xmlUrl="https://example.org/police.xml"/>
  <outline type="link" text="A site" htmlUrl="https://example.com/"/>
  <outline type="rss" text="FTP" xmlUrl="ftp://example.com/feed"/>
</body></opml>"""
RULES = """\
topics:
  - id: met
    title: Met
    description: the Met
    match: {any: ["Metropolitan Police"]}
# Where metwatch looks
sources:
  - id: bbc-london   # the London page
    name: BBC News
    url: https://feeds.bbci.co.uk/news/england/london/rss.xml
  - id: news
    name: Old news
    url: https://old.example.com/rss
    enabled: false

# Tuned on 2024-08-20
findings: []
"""


def test_feeds_are_read_from_any_depth_each_url_once() -> None:
    assert feeds_in_opml(OPML, "r.opml") == [
        OpmlFeed("BBC London", "https://feeds.bbci.co.uk/news/england/london/rss.xml"),
        OpmlFeed('Police "Oversight"', "https://example.org/police.xml"),
        OpmlFeed("Le Monde — Société", "https://www.lemonde.fr/societe/rss.xml"),
        OpmlFeed("https://example.net/feed", "https://example.net/feed"),
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<opml><body><outline", "not an OPML file: "),
        (b"<rss version='2.0'><channel/></rss>", "not an OPML file: no <opml><body>"),
        (b"", "not an OPML file: "),
    ],
)
def test_what_is_not_opml_is_named(data: bytes, reason: str) -> None:
    with pytest.raises(OpmlError, match=f"^r.opml: {re.escape(reason)}"):
        feeds_in_opml(data, "r.opml")


def test_entities_are_refused_not_expanded() -> None:
    entities = ['<!ENTITY l0 "ha">'] + [
        f'<!ENTITY l{n} "{("&l" + str(n - 1) + ";") * 10}">' for n in range(1, 10)
    ]
    bomb = (
        f"<?xml version='1.0'?><!DOCTYPE opml [{''.join(entities)}]>"
        "<opml><body><outline text='&l9;' xmlUrl='https://example.org/x'/></body></opml>"
    ).encode()
    started = time.perf_counter()
    with pytest.raises(OpmlError, match="^bomb.opml: "):
        feeds_in_opml(bomb, "bomb.opml")
    assert time.perf_counter() - started < 5  # a generous bound: expansion would take minutes
    # A small one, which no amplification limit catches, is refused for its DTD.
    small = (
        b"<?xml version='1.0'?><!DOCTYPE opml [<!ENTITY site 'https://evil.example/x'>]>"
        b"<opml><body><outline text='x' xmlUrl='&site;'/></body></opml>"
    )
    with pytest.raises(OpmlError, match="^small.opml: an OPML file with a DTD is refused"):
        feeds_in_opml(small, "small.opml")


def test_new_feeds_get_unique_ids_and_listed_ones_are_skipped() -> None:
    feeds = [
        *feeds_in_opml(OPML, "r.opml"),
        OpmlFeed("News", "https://a.example/rss"),  # "news" is a disabled source's id
        OpmlFeed("News", "https://b.example/rss"),
        OpmlFeed("Новости", "https://www.c.example/rss?x=1"),  # no Latin letters
        OpmlFeed("Old", "https://old.example.com/rss"),  # a disabled source's URL
        OpmlFeed("x" * 200, "https://d.example/rss"),
    ]
    entries, known = sources_to_add(feeds, RULES, interval=1200)
    assert known == 2
    assert [e["id"] for e in entries] == [
        "police-oversight", "le-monde-societe", "example-net-feed", "news-2", "news-3",
        "c-example-rss-x-1", "x" * 56,
    ]  # fmt: skip
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9-]{0,59}", e["id"]) for e in entries)
    assert {e["interval"] for e in entries} == {1200}


def test_entries_are_added_to_the_sources_list_and_nothing_else_changes() -> None:
    entries, _ = sources_to_add(feeds_in_opml(OPML, "r.opml"), RULES, interval=900)
    updated = add_to_rules(RULES, entries)

    added = entries_yaml(entries)
    assert updated.replace(added, "", 1) == RULES  # every other byte as it was
    # Inside the list, before the comment and blank line that introduce findings.
    assert updated.index(added) < updated.index("\n# Tuned on")
    rules = parse_rules(updated.encode(), "r.yaml")
    assert [s.id for s in rules.sources] == [
        "bbc-london", "police-oversight", "le-monde-societe", "example-net-feed",
    ]  # fmt: skip
    assert rules.sources[1].name == 'Police "Oversight"'


def test_sources_at_column_zero_without_a_list_or_in_flow_style() -> None:
    entries = [{"id": "a", "name": "A", "url": "https://a.example/rss", "interval": 900}]
    flush = "sources:\n- id: x\n  name: X\n  url: https://x.example/rss\n"
    assert add_to_rules(flush, entries) == flush + '- id: a\n  name: "A"\n' + (
        '  url: "https://a.example/rss"\n  interval: 900\n'
    )
    none = "topics: []\n"
    assert add_to_rules(none, entries).startswith("topics: []\n\nsources:\n  - id: a\n")
    with pytest.raises(OpmlError, match="not a block list"):
        add_to_rules("sources: []\n", entries)


@pytest.mark.parametrize(
    "name", ['quote " and \\ backslash', "tab\there", "line\u2028sep", "bell\x07", "emoji 🚓"]
)
def test_names_survive_the_yaml_round_trip(name: str) -> None:
    text = entries_yaml([{"id": "a", "name": name, "url": "https://a.example/rss"}])
    assert YAML(typ="safe").load(text) == [
        {"id": "a", "name": name, "url": "https://a.example/rss"}
    ]


def test_export_lists_feed_and_search_sources_and_reads_back() -> None:
    sources = [
        SourceSpec("bbc", "BBC News", "feed", "https://feeds.bbci.co.uk/news/rss.xml", 600),
        SourceSpec(
            "g", "Google <News> & co", "search", "https://news.google.com/rss?q=a&b=c", 900
        ),
        SourceSpec("met", "Met press", "page", "https://news.met.police.uk/news", 900, "h2 a"),
    ]
    opml = opml_of(sources, "metwatch sources", datetime(2026, 12, 5, tzinfo=UTC))
    assert feeds_in_opml(opml, "out.opml") == [
        OpmlFeed("BBC News", "https://feeds.bbci.co.uk/news/rss.xml"),
        OpmlFeed("Google <News> & co", "https://news.google.com/rss?q=a&b=c"),
    ]
    assert b"<dateCreated>Sat, 05 Dec 2026 00:00:00 +0000</dateCreated>" in opml


def test_cli_prints_writes_checks_and_exports(tmp_path: Path) -> None:
    opml = tmp_path / "reader.opml"
    opml.write_bytes(OPML)
    rules = tmp_path / "watch-rules.yaml"
    original = RULES_PATH.read_text(encoding="utf-8")
    rules.write_text(original, encoding="utf-8")
    env = {"METWATCH_RULES_PATH": str(rules)}

    printed = metwatch("rules", "import-opml", str(opml), cwd=tmp_path, **env)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("# 3 new sources (4 feeds in ")  # BBC London is listed
    assert "  - id: police-oversight\n" in printed.stdout
    assert rules.read_text(encoding="utf-8") == original  # printing changes nothing

    written = metwatch("rules", "import-opml", str(opml), "--write", "--interval", "1800",
                       cwd=tmp_path, **env)  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert "added 3 sources" in written.stdout
    check = metwatch("rules", "check", cwd=tmp_path, **env)
    assert check.returncode == 0 and "13 sources" in check.stdout, check.stdout + check.stderr
    again = metwatch("rules", "import-opml", str(opml), "--write", cwd=tmp_path, **env)
    assert "nothing to add (4 feeds in" in again.stdout

    exported = metwatch("rules", "export-opml", str(tmp_path / "out.opml"), cwd=tmp_path, **env)
    assert exported.returncode == 0, exported.stderr
    urls = [f.url for f in feeds_in_opml((tmp_path / "out.opml").read_bytes(), "out.opml")]
    assert "https://example.org/police.xml" in urls and len(urls) == 13

    broken = tmp_path / "broken.opml"
    broken.write_text("<opml><body>")
    failed = metwatch("rules", "import-opml", str(broken), "--write", cwd=tmp_path, **env)
    assert failed.returncode == 2 and "broken.opml: not an OPML file" in failed.stderr
