"""Drift settings: the methods, thresholds and per-column overrides, parsed strictly."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.errors import InvalidArgument

NUMERIC_METHODS = ("auto", "ks", "wasserstein", "psi")
CATEGORICAL_METHODS = ("auto", "chisquare", "jensenshannon", "psi")
# Methods whose threshold bounds a p-value (drift when p < threshold); the others bound a
# distance (drift when statistic >= threshold).
P_VALUE_METHODS = frozenset({"ks", "chisquare"})
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.2,
}
_SETTINGS_KEYS = (
    "share_threshold",
    "numeric_method",
    "categorical_method",
    "small_sample_rows",
    "thresholds",
    "columns",
)
_COLUMN_KEYS = ("method", "threshold", "skip")


@dataclass(frozen=True, slots=True)
class ColumnSettings:
    """A per-column override of the method and threshold, or ``skip``."""

    method: str | None = None
    threshold: float | None = None
    skip: bool = False


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """How drift is tested (the ``drift`` key of a model's monitoring settings)."""

    share_threshold: float = 0.5
    numeric_method: str = "auto"  # auto: ks up to small_sample_rows values, else wasserstein
    categorical_method: str = "auto"  # auto: chisquare up to small_sample_rows, else JS
    small_sample_rows: int = 1000
    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    columns: Mapping[str, ColumnSettings] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DriftSettings:
        """Parse settings, refusing unknown keys, methods and out-of-range numbers."""
        data = dict(data or {})
        _refuse_unknown("drift settings", data, _SETTINGS_KEYS)
        share = _number("drift share_threshold", data.get("share_threshold", 0.5), 0.0, 1.0)
        numeric = _method("drift numeric_method", data.get("numeric_method"), NUMERIC_METHODS)
        categorical = _method(
            "drift categorical_method", data.get("categorical_method"), CATEGORICAL_METHODS
        )
        small = data.get("small_sample_rows", 1000)
        if not isinstance(small, int) or isinstance(small, bool) or small < 0:
            raise InvalidArgument(
                f"drift small_sample_rows must be a whole number >= 0, not {small!r}"
            )
        thresholds = dict(DEFAULT_THRESHOLDS)
        given = data.get("thresholds") or {}
        if not isinstance(given, Mapping):
            raise InvalidArgument("drift thresholds must map a method name to a number")
        _refuse_unknown("drift thresholds", given, tuple(DEFAULT_THRESHOLDS))
        for name, value in given.items():
            thresholds[name] = _number(f"drift threshold of {name}", value, 0.0, None)
        columns = data.get("columns") or {}
        if not isinstance(columns, Mapping):
            raise InvalidArgument("drift columns must map a column name to its settings")
        return cls(
            share_threshold=share,
            numeric_method=numeric or "auto",
            categorical_method=categorical or "auto",
            small_sample_rows=small,
            thresholds=thresholds,
            columns={str(k): _column_settings(str(k), v) for k, v in columns.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        columns: dict[str, Any] = {}
        for name, column in self.columns.items():
            entry: dict[str, Any] = {}
            if column.method:
                entry["method"] = column.method
            if column.threshold is not None:
                entry["threshold"] = column.threshold
            if column.skip:
                entry["skip"] = True
            columns[name] = entry
        return {
            "share_threshold": self.share_threshold,
            "numeric_method": self.numeric_method,
            "categorical_method": self.categorical_method,
            "small_sample_rows": self.small_sample_rows,
            "thresholds": dict(self.thresholds),
            "columns": columns,
        }


def _refuse_unknown(what: str, data: Mapping[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise InvalidArgument(
            f"{what}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
        )


def _number(what: str, value: Any, low: float, high: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidArgument(f"{what} must be a number, not {value!r}")
    if value < low or (high is not None and value > high):
        limit = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        raise InvalidArgument(f"{what} must be {limit}, not {value!r}")
    return float(value)


def _method(what: str, value: Any, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise InvalidArgument(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _column_settings(name: str, value: Any) -> ColumnSettings:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"drift settings of column {name!r} must be a mapping")
    _refuse_unknown(f"drift settings of column {name!r}", value, _COLUMN_KEYS)
    method = _method(
        f"drift method of column {name!r}",
        value.get("method"),
        tuple(sorted({*NUMERIC_METHODS, *CATEGORICAL_METHODS})),
    )
    threshold = value.get("threshold")
    if threshold is not None:
        threshold = _number(f"drift threshold of column {name!r}", threshold, 0.0, None)
    return ColumnSettings(method, threshold, bool(value.get("skip", False)))


__all__ = [
    "CATEGORICAL_METHODS",
    "DEFAULT_THRESHOLDS",
    "NUMERIC_METHODS",
    "P_VALUE_METHODS",
    "ColumnSettings",
    "DriftSettings",
]
