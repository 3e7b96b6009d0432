"""Which of a long document's entries are read: the newest, up to a limit.

A feed lists its newest entries; a sitemap may list a whole site. Past a limit,
the rest are old (a feed of 260,000 entries is an archive), and reading them all
would cost minutes of a worker's time at every poll: normalising, looking them
up, classifying.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from metwatch.models import RawEntry

#: Newest entries read from one feed body.
FEED_MAX_ENTRIES = 1000
#: Newest entries kept from one sitemap poll: a plain sitemap lists the whole
#: site, and each new entry costs an article fetch.
SITEMAP_MAX_ENTRIES = 100
_UNDATED = datetime.min.replace(tzinfo=UTC)


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
