"""What the registry reads off a caller's free-form values: pages, tags, params, metrics,
and the flavor a version's file names suggest."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from corral.errors import InvalidArgument

MAX_PAGE = 1000
# The largest number the stores hold (SQL BIGINT): a larger id or offset matches nothing.
MAX_NUMBER = 2**63 - 1


def page_args(offset: int, limit: int) -> None:
    if not 0 <= offset <= MAX_NUMBER:
        raise InvalidArgument(f"offset must be between 0 and {MAX_NUMBER}, not {offset}")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}, not {limit}")


def str_map(kind: str, values: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (values or {}).items():
        if not isinstance(key, str) or not key or len(key) > 250:
            raise InvalidArgument(f"{kind} key {key!r} must be a string of 1 to 250 characters")
        text = value if isinstance(value, str) else str(value)
        if len(text) > 5000:
            raise InvalidArgument(f"{kind} '{key}' is longer than 5000 characters")
        out[key] = text
    return out


def metric_map(values: dict[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (values or {}).items():
        if not isinstance(key, str) or not key or len(key) > 250:
            raise InvalidArgument(f"metric name {key!r} must be a string of 1 to 250 characters")
        try:
            out[key] = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"metric '{key}' must be a number, not {value!r}") from exc
    return out


_FLAVOR_BY_SUFFIX = {
    ".skops": "sklearn",
    ".onnx": "onnx",
    ".ubj": "xgboost",
    ".lgb": "lightgbm",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".joblib": "joblib",
}


def detect_flavor(paths: Iterable[str]) -> str:
    """The flavor suggested by the files' names, or 'files' when none is recognised."""
    for path in sorted(paths):
        for suffix, flavor in _FLAVOR_BY_SUFFIX.items():
            if path.lower().endswith(suffix):
                return flavor
    return "files"
