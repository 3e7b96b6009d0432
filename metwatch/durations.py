"""Waits and spacings in words, as alerts, ``/sources`` and ``metwatch sources`` say them."""

from __future__ import annotations

from datetime import timedelta

_UNITS = (("days", 86400, 2), ("h", 3600, 1), ("min", 60, 1))


def duration(value: timedelta | float) -> str:
    """In the largest whole unit that fits: "45 s", "12 min", "3 h", "2 days"
    (a day and a half is "36 h": whole days start at two)."""
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    for unit, size, least in _UNITS:
        if seconds >= size * least:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
