"""What one archive feed costs a poll: parse and normalise, classify, store.

A feed of N minimal entries (title, link, GUID, date), read as a poll reads it
(``read_and_normalise``, then ``classify_and_prepare`` on every item, as when
all are new, then sorting and storing them in a new SQLite file), with the
``FEED_MAX_ENTRIES`` limit and with it lifted, in this process. Prints seconds
per stage and the ratio.

    .venv/bin/python bench/giant_feed.py [--entries 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import metwatch.offload as offload
from classifiers.rules import load_rules
from metwatch.models import SourceSpec
from metwatch.store import open_store
from watchers.fastparse import How
from watchers.newest import FEED_MAX_ENTRIES

NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)
#: How a poll reads a new source's body: fast inside the proven subset (these
#: bodies are), else feedparser.
HOW: How = "unproven"
SPEC = SourceSpec("archive", "Archive", "feed", "https://news.example.com/archive.xml", 900)


def archive(entries: int) -> bytes:
    items = "".join(
        f"<item><title>Story {n}</title><link>https://news.example.com/{n}</link>"
        f"<guid>s{n}</guid><pubDate>{format_datetime(NOW - timedelta(minutes=n))}</pubDate>"
        "</item>"
        for n in range(entries)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Archive</title><link>https://news.example.com/</link>{items}</channel></rss>"
    ).encode()


def run(body: bytes, limit: int) -> tuple[list[float], int]:
    """Seconds to read, to classify and to store; items read."""
    offload.FEED_MAX_ENTRIES = limit
    rules = offload.remember(load_rules("watch-rules.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'metwatch.db'}")
        marks = [time.perf_counter()]
        read = offload.read_and_normalise(HOW, body, SPEC.url, "application/rss+xml", SPEC, NOW, 0)
        marks.append(time.perf_counter())
        offload.classify_and_prepare(rules, read.items)
        marks.append(time.perf_counter())
        store.insert_items(store.sort_items(read.items).new, NOW)
        marks.append(time.perf_counter())
        store.engine.dispose()
    return [b - a for a, b in zip(marks, marks[1:], strict=False)], len(read.items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    body = archive(args.entries)
    print(f"feed of {args.entries:,} entries, {len(body) / 1e6:.1f} MB, read {HOW!r}")
    runs = {"limited": FEED_MAX_ENTRIES, "all": args.entries}
    totals = {}
    for label, limit in runs.items():
        (read_s, classify_s, store_s), items = run(body, limit)
        totals[label] = read_s + classify_s + store_s
        print(f"{label:>8}: {items:>7,} items read; read {read_s:6.2f} s, classify "
              f"{classify_s:6.2f} s, store {store_s:6.2f} s, "
              f"total {totals[label]:6.2f} s")  # fmt: skip
    print(f"all / limited: {totals['all'] / totals['limited']:.1f}x")


if __name__ == "__main__":
    main()
