"""The JSON form of monitoring's answers, one way for the REST API and the SDK's local mode."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from enum import Enum
from typing import Any

from corral.monitoring.entities import Objective

__all__ = ["plain"]


def plain(obj: Any) -> Any:
    """Entities, reports, enums, datetimes and NumPy values as plain JSON values.

    Objectives gain their ``expression``; objects with ``to_dict`` (drift reports, feedback
    receipts) are turned by it; NaN and infinities become None, as JSON has neither.
    """
    if isinstance(obj, Objective):
        fields = {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {**fields, "expression": obj.expression}
    if isinstance(obj, Enum):
        return plain(obj.value)
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [plain(v) for v in obj]
    if callable(getattr(obj, "to_dict", None)) and not isinstance(obj, type):
        return plain(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if hasattr(obj, "tolist"):  # NumPy scalars and arrays
        return plain(obj.tolist())
    return obj
