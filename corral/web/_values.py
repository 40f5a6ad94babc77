"""Reading what monitoring returns (dicts or entities) and formatting it for a page."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def field_of(item: Any, key: str, default: Any = None) -> Any:
    """A field of a dict or of an entity (dataclass), whichever the service returned."""
    if isinstance(item, Mapping):
        return item.get(key, default)
    return getattr(item, key, default)


def plain(item: Any) -> dict[str, Any]:
    """A mapping, a report with ``to_dict()`` or a dataclass, as a plain dict."""
    if isinstance(item, Mapping):
        return dict(item)
    if hasattr(item, "to_dict"):
        result: dict[str, Any] = item.to_dict()
        return result
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    raise TypeError(f"cannot read {type(item).__name__} as a mapping")


def moment(value: Any) -> datetime | None:
    """A datetime (UTC when naive) from a datetime or an ISO string; None otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        found = value
    else:
        try:
            found = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def when(value: Any) -> str:
    """A moment in UTC for a table cell (a dash when there is none)."""
    found = moment(value)
    return found.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if found else "—"


def to_number(value: Any) -> float | None:
    """A finite float, or None for None, booleans, text and NaN."""
    if value is None or isinstance(value, bool):
        return None
    try:
        found = float(value)
    except (TypeError, ValueError):
        return None
    return found if math.isfinite(found) else None


def percent(value: Any) -> str:
    """A share (0.123) as a percentage (12.3 %)."""
    share = to_number(value)
    return "—" if share is None else f"{share * 100:.1f} %"


def count(value: Any) -> str:
    """A whole number with thousands separators."""
    found = to_number(value)
    return "—" if found is None else f"{found:,.0f}"
