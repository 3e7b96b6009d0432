"""Which of a long document's entries are read: past a limit, the new ones.

A feed lists its newest entries; a sitemap may list a whole site. Past a limit,
the rest are old (a feed of 260,000 entries is an archive), and reading them all
would cost a worker's time, look-ups and rows at every poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from metwatch.models import RawEntry

#: Entries read from one feed body past which only its first and its newest are read.
FEED_MAX_ENTRIES = 1000
#: Newest entries kept from one sitemap poll: a plain sitemap lists the whole
#: site, and each new entry costs an article fetch.
SITEMAP_MAX_ENTRIES = 100
_UNDATED = datetime.min.replace(tzinfo=UTC)


def feed_entries(
    entries: Sequence[RawEntry], limit: int = FEED_MAX_ENTRIES
) -> tuple[RawEntry, ...]:
    """The entries of a feed body that are read: all of them up to ``limit``; past
    it, the first ``limit`` in the document and the ``limit`` newest by date, in the
    document's order.

    Feeds put new entries on top, but a new entry may carry an old date (a
    republished story, a CMS's first publication date), and a few sort oldest
    first: either end of the rule alone would never read some new entry.
    """
    if len(entries) <= limit:
        return tuple(entries)
    dated = sorted(
        (n for n, e in enumerate(entries) if e.published),
        key=lambda n: entries[n].published or _UNDATED, reverse=True,
    )  # fmt: skip
    kept = set(range(limit)) | set(dated[:limit])
    return tuple(e for n, e in enumerate(entries) if n in kept)


def newest_entries(entries: Sequence[RawEntry], limit: int) -> tuple[RawEntry, ...]:
    """At most ``limit`` of ``entries``, newest first by date.

    When undated entries must be cut, which are new is unknown: sites list them
    oldest first as often as newest first, so both ends of the document are kept
    (a new URL appended to a long undated sitemap is still read).
    """
    dated = sorted((e for e in entries if e.published), key=_published, reverse=True)
    if len(dated) >= limit:
        return tuple(dated[:limit])
    undated = [e for e in entries if not e.published]
    room = limit - len(dated)
    if len(undated) > room:
        head = (room + 1) // 2
        undated = undated[:head] + undated[len(undated) - (room - head) :]
    return (*dated, *undated)


def _published(entry: RawEntry) -> datetime:
    return entry.published or _UNDATED
