"""What flagged items bring to their stories: text fingerprints and summaries. Pure.

Computed before clustering, for a whole poll's flagged items in one call, so
that a worker process (``metwatch.workers``) can do it on another core while
the main process stores and clusters. A summary is made for every flagged
item although only an item that starts a story needs one: off the main
process that is cheaper than asking twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.fingerprints import Fingerprint, fingerprint
from bot.summary import summarise

StoryInputs = tuple[Fingerprint, tuple[str, ...]]


def story_inputs(texts: Sequence[str]) -> list[StoryInputs]:
    """(fingerprint, summary) of each text (``Item.text``), in order."""
    return [(fingerprint(text), summarise(text)) for text in texts]
