"""One text form for labels and predictions, so that ``1``, ``1.0`` and ``"1"`` match."""

from __future__ import annotations

import math
from typing import Any


def label_text(value: Any) -> str | None:
    """The canonical text of a class label or target value (None for a missing one)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalars
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    if text.lower() in {"true", "false"}:
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return label_text(number) if math.isfinite(number) else text


def label_value(value: Any) -> float | None:
    """The label as a number when it is one (regression targets, numeric classes)."""
    text = label_text(value)
    if text is None:
        return None
    if text in {"true", "false"}:
        return 1.0 if text == "true" else 0.0
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
