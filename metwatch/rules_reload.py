"""Hot reload of the watch rules file while ``metwatch run`` is running.

The file is re-read when its content changes (checked by digest on every
tick, which also works on bind mounts where file-change events never
arrive). A valid change takes effect at once: sources are synced (added,
removed, changed) and findings recompiled, and a summary of what changed is
logged. An invalid change is rejected with its error, the previous rules stay
in force, and admins are told once per bad version.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from classifiers.rules import RuleSet, parse_rules
from metwatch.errors import RulesError

log = logging.getLogger(__name__)


def describe_change(old: RuleSet, new: RuleSet) -> str:
    """One line saying what a new rules version adds, removes and changes."""
    parts = []
    for kind, before, after in (
        ("sources", {s.id: s for s in old.sources}, {s.id: s for s in new.sources}),
        ("findings", {f.id: f for f in old.findings}, {f.id: f for f in new.findings}),
        ("topics", {t.id: t for t in old.topics}, {t.id: t for t in new.topics}),
    ):
        added = sorted(after.keys() - before.keys())
        removed = sorted(before.keys() - after.keys())
        changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
        for verb, ids in (("added", added), ("removed", removed), ("changed", changed)):
            if ids:
                parts.append(f"{kind} {verb}: {', '.join(ids)}")
    return "; ".join(parts) or "no change in sources, findings or topics"


class RulesReloader:
    """Checks the rules file for changes and applies valid ones."""

    def __init__(
        self,
        path: Path,
        current: RuleSet,
        apply: Callable[[RuleSet], None],
        alert: Callable[[str], Awaitable[None]],
    ) -> None:
        self.path = path
        self.current = current
        self.apply = apply
        self.alert = alert
        self._last_bad: str | None = None

    async def check(self) -> str | None:
        """Reload if the file changed; returns the change summary, or None."""
        try:
            data = self.path.read_bytes()
        except OSError as e:
            await self._reject(f"cannot read rules file {self.path}: {e.strerror}", "io")
            return None
        digest = hashlib.sha256(data).hexdigest()[:12]
        if digest in (self.current.version, self._last_bad):
            return None
        try:
            new = parse_rules(data, str(self.path))
        except RulesError as e:
            await self._reject(f"rules change rejected, previous rules stay:\n{e}", digest)
            return None
        summary = describe_change(self.current, new)
        self.apply(new)
        self.current, self._last_bad = new, None
        log.info("rules reloaded (version %s): %s", new.version, summary)
        return summary

    async def _reject(self, message: str, version: str) -> None:
        if version != self._last_bad:
            self._last_bad = version
            log.error("%s", message)
            await self.alert(message)
