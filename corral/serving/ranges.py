"""Reference ranges: is a request's input like the data the version was registered with?

Each served version gets a ``RangeCheck`` when its route is resolved: for every numeric
input feature the ``[min, max]`` of the version's example rows (``input_example.json``),
widened on each side by ``margin`` × (max − min), and for every text or mixed column the
set of values the example holds. A deployment config's ``input_checks`` section overrides
or adds ranges and categories per column, turns a column's check off (``null``) and says
what happens to a row outside them::

    {"input_checks": {"out_of_range": "flag",        # or "refuse", or "off"
                      "margin": 0.0,                 # share of the example's span
                      "ranges": {"age": [0, 120], "income": [0, null], "comment": null},
                      "categories": {"country": ["FR", "DE"], "score_band": [1, 2, 3]}}}

``check`` runs on the request path: one vectorised pass over the batch. NaN, infinities,
nulls and values that are not numbers in a numeric column are out of range; so is a null
in a categorical column. A version without an example, in a deployment without explicit
ranges, is not checked (``RangeCheck.summary`` says so).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from corral.errors import InvalidArgument
from corral.registry.entities import ColumnSpec, ModelVersion
from corral.registry.signature import EXAMPLE_FILE
from corral.serving.errors import InvalidInput
from corral.serving.inputs import is_numeric, request_matrix
from corral.serving.predictor import Array

MODES = ("flag", "refuse", "off")
KEYS = ("out_of_range", "margin", "ranges", "categories")
# Bounds of an open side: finite, so that an infinity still falls outside.
_LOWEST = float(np.finfo(np.float64).min)
_HIGHEST = float(np.finfo(np.float64).max)
_SHOWN_ROWS = 3
_SHOWN_COLUMNS = 3
_SHOWN_CATEGORIES = 8
MAX_EXAMPLE_BYTES = 64 << 20


# -- the deployment config's section -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputChecks:
    """A deployment's ``input_checks``: the mode, the margin and explicit ranges/categories.

    In ``ranges`` and ``categories`` a ``None`` bound means the side is open; a ``None``
    instead of the whole range (or of the categories) turns the column's check off.
    """

    out_of_range: str = "flag"
    margin: float = 0.0
    ranges: tuple[tuple[str, tuple[float, float] | None], ...] = ()
    categories: tuple[tuple[str, frozenset[Any] | None], ...] = ()


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bound(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(value):
        raise InvalidArgument(
            f"{path} must be [low, high]: two finite numbers, or null for an open side; "
            f"not {_show(value)} in it"
        )
    return float(value)


def _range(value: Any, path: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidArgument(
            f"{path} must be [low, high] (null for an open side, or null instead of the "
            f"list to leave the column unchecked), not {_show(value)}"
        )
    low, high = _bound(value[0], path), _bound(value[1], path)
    low = _LOWEST if low is None else low
    high = _HIGHEST if high is None else high
    if low > high:
        raise InvalidArgument(f"{path} has low {value[0]} above high {value[1]}; swap them")
    return low, high


def _categories(value: Any, path: str) -> frozenset[Any] | None:
    if value is None:
        return None
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(v, str | bool) or (_is_number(v) and math.isfinite(v)) for v in value)
    )
    if not ok:
        raise InvalidArgument(
            f"{path} must be a non-empty list of the allowed values (strings or numbers), or "
            f"null to leave the column unchecked; not {_show(value)}"
        )
    return frozenset(value)


def _named(section: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = section.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument(
            f"input_checks.{key} must be an object keyed by column name, not {_show(value)}"
        )
    return value


def parse_input_checks(section: Any) -> InputChecks:
    """The ``input_checks`` section of a deployment config (defaults when absent)."""
    if section is None:
        return InputChecks()
    if not isinstance(section, Mapping):
        raise InvalidArgument(
            f"input_checks must be an object with the keys {', '.join(KEYS)}, not {_show(section)}"
        )
    unknown = sorted(str(k) for k in section if k not in KEYS)
    if unknown:
        raise InvalidArgument(
            f"input_checks has unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; allowed: {', '.join(KEYS)}"
        )
    mode = section.get("out_of_range", "flag")
    if mode not in MODES:
        raise InvalidArgument(
            f'input_checks.out_of_range must be "flag", "refuse" or "off", not {_show(mode)}'
        )
    margin = section.get("margin", 0.0)
    if not _is_number(margin) or not math.isfinite(margin) or margin < 0:
        raise InvalidArgument(
            "input_checks.margin must be a number of at least 0 (a share of each numeric "
            f"column's span in the example, e.g. 0.1), not {_show(margin)}"
        )
    ranges = _named(section, "ranges")
    categories = _named(section, "categories")
    both = sorted(
        name for name in set(ranges) & set(categories)
        if ranges[name] is not None and categories[name] is not None
    )  # fmt: skip
    if both:
        raise InvalidArgument(
            f"input_checks gives column '{both[0]}' both a range and categories; give one"
        )
    return InputChecks(
        out_of_range=mode,
        margin=float(margin),
        ranges=tuple(
            (str(k), _range(v, f"input_checks.ranges.{k}")) for k, v in sorted(ranges.items())
        ),
        categories=tuple(
            (str(k), _categories(v, f"input_checks.categories.{k}"))
            for k, v in sorted(categories.items())
        ),
    )


# -- features and the reference of an example ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Feature:
    """One position of the request matrix: a scalar column, or one value of a vector column."""

    name: str  # the column, or "column[i]"
    column: str
    index: int
    numeric: bool
    low: float | None = None  # a range, or ...
    high: float | None = None
    allowed: frozenset[Any] | None = None  # ... the values seen (neither: not checked)


def layout(columns: Sequence[ColumnSpec]) -> list[Feature] | None:
    """The features of a signature in matrix order (None when a vector width is unknown)."""
    features: list[Feature] = []
    for column in columns:
        if len(column.shape) <= 1:
            width = 1
        elif len(column.shape) == 2 and column.shape[1] > 0:
            width = column.shape[1]
        else:
            return None
        numeric = is_numeric(column)
        for i in range(width):
            name = column.name if len(column.shape) <= 1 else f"{column.name}[{i}]"
            features.append(Feature(name, column.name, len(features), numeric))
    return features


def _floats(values: Array) -> Array:
    """Values as float64; what is not a number (null, text) becomes NaN."""
    if values.dtype.kind == "f":
        return values
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        converted: Array = np.vectorize(_float, otypes=[np.float64])(values)
        return converted


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def example_reference(example: Any, columns: Sequence[ColumnSpec]) -> list[Feature] | None:
    """Each feature's raw ``[min, max]`` or seen values in ``example`` (None: not usable).

    The example is laid out exactly as requests are, so the features line up with theirs.
    """
    features = layout(columns)
    if not features:
        return None
    matrix = request_matrix(example, columns, allow_missing=True)
    if matrix.shape[1] != len(features):
        return None
    found: list[Feature] = []
    for feature in features:
        values = matrix[:, feature.index]
        if feature.numeric:
            numbers = _floats(values)
            numbers = numbers[np.isfinite(numbers)]
            if numbers.size:
                found.append(_with(feature, low=float(numbers.min()), high=float(numbers.max())))
        else:
            seen = {v for v in values.tolist() if v is not None and v == v}  # not null, not NaN
            if seen:
                found.append(_with(feature, allowed=frozenset(seen)))
    return found


def read_reference(
    version: ModelVersion, read: Callable[[str, int, str], Iterable[bytes]]
) -> list[Feature] | None:
    """The reference of a version's stored example (None without one); ``read`` streams a file."""
    entry = next((f for f in version.files if f.path == EXAMPLE_FILE), None)
    if entry is None or version.signature is None:
        return None
    if entry.size > MAX_EXAMPLE_BYTES:
        raise InvalidArgument(
            f"{EXAMPLE_FILE} of version {version.number} of '{version.model}' is over "
            f"{MAX_EXAMPLE_BYTES >> 20} MiB; its reference ranges are not computed"
        )
    data = b"".join(read(version.model, version.number, EXAMPLE_FILE))
    return example_reference(json.loads(data), version.signature.inputs)


def _with(
    feature: Feature,
    *,
    low: float | None = None,
    high: float | None = None,
    allowed: frozenset[Any] | None = None,
) -> Feature:
    return Feature(feature.name, feature.column, feature.index, feature.numeric, low, high, allowed)


def _widen(feature: Feature, margin: float) -> Feature:
    if feature.low is None or feature.high is None or margin == 0:
        return feature
    span = feature.high - feature.low
    # A column constant in the example widens around its value instead of not at all.
    pad = margin * (span if span > 0 else abs(feature.high))
    return _with(feature, low=feature.low - pad, high=feature.high + pad)


# -- the check -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutOfRange:
    """What one request's check found: per row whether it is out, and rows per column."""

    rows: int
    mask: Array | None = None  # bool per row; None when every row is in range
    columns: dict[str, list[int]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return 0 if self.mask is None else int(self.mask.sum())

    def flagged_rows(self) -> list[int]:
        return [] if self.mask is None else np.flatnonzero(self.mask).tolist()

    def to_dict(self) -> dict[str, Any]:
        """The response form: ``{"rows": [...], "columns": {column: [rows]}}``."""
        return {"rows": self.flagged_rows(), "columns": self.columns}


class OutOfRangeRefused(InvalidInput):
    """A deployment in ``refuse`` mode got rows outside the version's reference ranges."""


def _text(value: Any) -> str:
    if isinstance(value, float | np.floating):
        number = float(value)
        if number == _HIGHEST:
            return "∞"
        if number == _LOWEST:
            return "-∞"
        return repr(number) if not number.is_integer() else str(int(number))
    return repr(value.item() if isinstance(value, np.generic) else value)


class RangeCheck:
    """The reference ranges of one served (version, deployment) and their vectorised check."""

    def __init__(
        self,
        features: Sequence[Feature],
        *,
        mode: str = "flag",
        model: str = "",
        version: int = 0,
        source: str = "",
    ) -> None:
        self.mode = mode
        self.model = model
        self.version = version
        self.source = source  # "example", "config", "example and config" or ""
        self.features = [f for f in features if f.low is not None or f.allowed is not None]
        self._by_name = {f.name: f for f in self.features}
        ranged = [f for f in self.features if f.low is not None]
        self._range_index = np.array([f.index for f in ranged], dtype=np.intp)
        self._low = np.array([f.low for f in ranged], dtype=np.float64)
        self._high = np.array([f.high for f in ranged], dtype=np.float64)
        self._sets = [f for f in self.features if f.allowed is not None]
        self._set_numbers = [
            np.array(sorted(_float(v) for v in f.allowed or ()), dtype=np.float64)
            for f in self._sets
        ]
        self._names = [f.name for f in ranged] + [f.name for f in self._sets]
        self._width = max((f.index for f in self.features), default=-1) + 1
        # Every feature ranged, in order: the matrix itself is the block (no copy).
        self._whole = [f.index for f in ranged] == list(range(len(ranged)))

    @property
    def active(self) -> bool:
        return self.mode != "off" and bool(self.features)

    @property
    def refuses(self) -> bool:
        return self.mode == "refuse"

    @property
    def summary(self) -> str:
        """One line for the served model's metadata."""
        if self.mode == "off":
            return "off: input_checks.out_of_range is off"
        if not self.features:
            return (
                "none: the version has no example and the deployment config no "
                "input_checks ranges, so inputs are not checked against reference ranges"
            )
        return f"{self.mode}: {len(self.features)} features checked against the {self.source}"

    def describe(self) -> dict[str, Any]:
        """The mode and each checked feature's range or allowed values (JSON-ready)."""
        ranges: dict[str, Any] = {}
        for f in self.features:
            if f.low is not None and f.high is not None:
                ranges[f.name] = [
                    None if f.low == _LOWEST else f.low,
                    None if f.high == _HIGHEST else f.high,
                ]
            else:
                ranges[f.name] = sorted(f.allowed or (), key=repr)
        return {"out_of_range": self.mode, "source": self.source or None, "features": ranges}

    def check(self, matrix: Array) -> OutOfRange | None:
        """Which rows are out of range, and on which columns (None when nothing is checked)."""
        if not self.active or matrix.ndim != 2 or matrix.shape[1] < self._width:
            return None
        rows = int(matrix.shape[0])
        parts: list[Array] = []
        if self._range_index.size:
            whole = self._whole and matrix.shape[1] == self._range_index.size
            block = _floats(matrix if whole else matrix[:, self._range_index])
            # NaN compares false on both sides; an infinity is beyond every finite bound.
            parts.append(~((block >= self._low) & (block <= self._high)))
        for feature, numbers in zip(self._sets, self._set_numbers, strict=True):
            values = matrix[:, feature.index]
            if feature.numeric:
                inside = np.isin(_floats(values), numbers)
            else:
                inside = _members(values, feature.allowed or frozenset())
            parts.append(~inside.reshape(rows, 1))
        bad = parts[0] if len(parts) == 1 else np.hstack(parts)
        flagged = bad.any(axis=0)
        if not flagged.any():
            return OutOfRange(rows)
        columns = {
            self._names[j]: np.flatnonzero(bad[:, j]).tolist() for j in np.flatnonzero(flagged)
        }
        return OutOfRange(rows, np.asarray(bad.any(axis=1)), columns)

    def _allowed(self, feature: Feature) -> str:
        if feature.low is not None and feature.high is not None:
            return f"[{_text(feature.low)}, {_text(feature.high)}]"
        values = sorted(feature.allowed or (), key=repr)
        shown = ", ".join(_text(v) for v in values[:_SHOWN_CATEGORIES])
        more = f", … ({len(values)} in all)" if len(values) > _SHOWN_CATEGORIES else ""
        return f"one of {shown}{more}"

    def refusal(self, matrix: Array, found: OutOfRange) -> OutOfRangeRefused:
        """The error naming the first offending rows, their columns and the allowed ranges."""
        flagged = found.flagged_rows()
        details = []
        for row in flagged[:_SHOWN_ROWS]:
            names = [name for name, rows in found.columns.items() if row in rows]
            cells = [
                f"column '{name}' is {_text(matrix[row, self._by_name[name].index])}, "
                f"allowed {self._allowed(self._by_name[name])}"
                for name in names[:_SHOWN_COLUMNS]
            ]
            extra = f", and {len(names) - _SHOWN_COLUMNS} more columns" if len(names) > 3 else ""
            details.append(f"row {row}: {'; '.join(cells)}{extra}")
        more = len(flagged) - _SHOWN_ROWS
        tail = f" (and {more} more rows)" if more > 0 else ""
        return OutOfRangeRefused(
            f"{len(flagged)} of {found.rows} rows are outside the reference ranges of model "
            f"'{self.model}' version {self.version} ({self.source}), and its deployment refuses "
            f"them (input_checks.out_of_range: refuse): {' | '.join(details)}{tail}. Send "
            "values within the ranges, or have a maintainer widen input_checks (margin, "
            "ranges, categories) in the deployment config",
            field=next(iter(found.columns), "inputs"),
        )


def _members(values: Array, allowed: frozenset[Any]) -> Array:
    items = values.tolist()
    try:
        return np.fromiter(map(allowed.__contains__, items), dtype=bool, count=len(items))
    except TypeError:  # an unhashable value is not an allowed one
        return np.array([_contains(allowed, v) for v in items], dtype=bool)


def _contains(allowed: frozenset[Any], value: Any) -> bool:
    try:
        return value in allowed
    except TypeError:
        return False


def build_check(
    reference: Sequence[Feature] | None,
    checks: InputChecks,
    columns: Sequence[ColumnSpec],
    *,
    model: str = "",
    version: int = 0,
) -> RangeCheck:
    """The check of a version's example ``reference`` under a deployment's ``checks``.

    Explicit ranges and categories replace the example's for their column (every value of
    a vector column, or ``column[i]`` for one), and are not widened by the margin.
    """
    if checks.out_of_range == "off":
        return RangeCheck((), mode="off", model=model, version=version)
    features = {f.name: f for f in layout(columns) or ()}
    by_column: dict[str, list[str]] = {}
    for f in features.values():
        by_column.setdefault(f.column, []).append(f.name)
    chosen = {f.name: _widen(f, checks.margin) for f in reference or ()}
    explicit = False
    # Whole columns first, so that "column[i]" overrides what "column" says of its values.
    entries = sorted((*checks.ranges, *checks.categories), key=lambda e: e[0] not in by_column)
    for key, value in entries:
        names = [key] if key in features else by_column.get(key)
        if not names:
            known = ", ".join(by_column) or "none (the version has no signature)"
            raise InvalidArgument(
                f"input_checks names column '{key}', which version {version} of '{model}' does "
                f"not have; its columns: {known}"
            )
        for name in names:
            feature = features[name]
            if value is None:
                chosen.pop(name, None)
            elif isinstance(value, frozenset):
                chosen[name] = _with(feature, allowed=value)
            elif not feature.numeric:
                raise InvalidArgument(
                    f"input_checks.ranges.{key}: column '{feature.column}' holds text; give "
                    "its allowed values under input_checks.categories instead"
                )
            else:
                chosen[name] = _with(feature, low=value[0], high=value[1])
            explicit = True
    source = " and ".join(
        part
        for part, used in (
            (f"example of version {version}", bool(reference)),
            ("deployment config", explicit),
        )
        if used
    )
    ordered = sorted(chosen.values(), key=lambda f: f.index)
    return RangeCheck(
        ordered, mode=checks.out_of_range, model=model, version=version, source=source
    )
