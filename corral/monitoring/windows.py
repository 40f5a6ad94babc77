"""Durations (``7d``, ``1h``, ``90s``) and time windows, parsed and printed one way."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from corral.errors import InvalidArgument

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


_LONGEST = 100 * 365 * 86_400


def parse_duration(text: str, *, what: str = "duration") -> int:
    """Seconds in ``text`` such as ``90s``, ``15m``, ``1h``, ``7d`` or ``2w``."""
    match = _DURATION.match(str(text))
    if not match:
        raise InvalidArgument(
            f"{what} {text!r} is not a duration: use a number and a unit, e.g. 15m, 1h, 7d"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 1:
        raise InvalidArgument(f"{what} {text!r} is shorter than one second")
    if seconds > _LONGEST:
        raise InvalidArgument(f"{what} {text!r} is longer than a hundred years")
    return int(seconds)


def format_duration(seconds: int) -> str:
    """The shortest exact spelling of a duration in s, m, h or d (``604800`` → ``7d``)."""
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def utcnow() -> datetime:
    return datetime.now(UTC)


def window_ending(end: datetime, seconds: int) -> tuple[datetime, datetime]:
    """The half-open window ``[end - seconds, end)``."""
    return end - timedelta(seconds=seconds), end
