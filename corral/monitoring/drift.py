"""Drift between reference and current data, column by column, with data quality.

Numeric columns: Kolmogorov–Smirnov for small samples, Wasserstein distance normalised by
the reference's standard deviation for large ones, PSI on request. Categorical columns:
chi-square for small samples, Jensen–Shannon distance for large ones, PSI on request.
Columns are read one at a time, so memory stays near one column of each side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from corral.errors import InvalidArgument
from corral.monitoring import _distributions as dist
from corral.monitoring.drift_settings import (
    CATEGORICAL_METHODS,
    DEFAULT_THRESHOLDS,
    NUMERIC_METHODS,
    P_VALUE_METHODS,
    ColumnSettings,
    DriftSettings,
)
from corral.monitoring.ports import ColumnSource
from corral.monitoring.quality import ColumnQuality

__all__ = [
    "ColumnDrift",
    "ColumnQuality",
    "ColumnSettings",
    "DriftReport",
    "DriftSettings",
    "EncodedColumns",
    "drift_report",
]


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """One column's drift test and data quality.

    ``method`` is ``none`` when the column could not be tested (``note`` says why) and
    ``constant`` when the reference holds a single value.
    """

    name: str
    kind: str
    method: str
    statistic: float
    threshold: float
    drifted: bool
    p_value: float | None = None
    note: str = ""
    quality: ColumnQuality = field(default_factory=ColumnQuality)
    histogram: dict[str, Any] = field(default_factory=dict)

    @property
    def tested(self) -> bool:
        return self.method != "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "statistic": _finite(self.statistic),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "p_value": _finite(self.p_value),
            "note": self.note,
            "quality": self.quality.to_dict(),
            "histogram": self.histogram,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnDrift:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            method=str(data["method"]),
            statistic=float(data.get("statistic") or 0.0),
            threshold=float(data.get("threshold") or 0.0),
            drifted=bool(data["drifted"]),
            p_value=None if data.get("p_value") is None else float(data["p_value"]),
            note=str(data.get("note") or ""),
            quality=ColumnQuality.from_dict(dict(data.get("quality") or {})),
            histogram=dict(data.get("histogram") or {}),
        )


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Every column's drift, the share that drifted, and the prediction's drift."""

    reference_rows: int
    current_rows: int
    columns: list[ColumnDrift]
    drifted_count: int
    drifted_share: float
    dataset_drift: bool
    share_threshold: float
    prediction: ColumnDrift | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "columns": [c.to_dict() for c in self.columns],
            "drifted_count": self.drifted_count,
            "drifted_share": self.drifted_share,
            "dataset_drift": self.dataset_drift,
            "share_threshold": self.share_threshold,
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        prediction = data.get("prediction")
        return cls(
            reference_rows=int(data["reference_rows"]),
            current_rows=int(data["current_rows"]),
            columns=[ColumnDrift.from_dict(c) for c in data["columns"]],
            drifted_count=int(data["drifted_count"]),
            drifted_share=float(data["drifted_share"]),
            dataset_drift=bool(data["dataset_drift"]),
            share_threshold=float(data["share_threshold"]),
            prediction=None if prediction is None else ColumnDrift.from_dict(prediction),
        )


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@runtime_checkable
class EncodedColumns(Protocol):
    """A ColumnSource that can also give a categorical column as dictionary codes,
    which spares building and sorting millions of Python strings."""

    def encoded(self, name: str) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """``(categories, codes)``: codes index categories, -1 for missing."""
        ...


def drift_report(
    reference: ColumnSource,
    current: ColumnSource,
    settings: DriftSettings | None = None,
    *,
    columns: list[str] | None = None,
    prediction_column: str | None = "prediction",
) -> DriftReport:
    """Test every column (or ``columns``) of ``current`` against ``reference``."""
    settings = settings or DriftSettings()
    ref_kinds, cur_kinds = reference.kinds(), current.kinds()
    names = list(ref_kinds) + [n for n in cur_kinds if n not in ref_kinds]
    if columns is not None:
        unknown = [c for c in columns if c not in ref_kinds and c not in cur_kinds]
        if unknown:
            raise InvalidArgument(
                f"column(s) {', '.join(map(repr, unknown))} are in neither the reference "
                f"nor the current data; they have: {', '.join(names) or 'no columns'}"
            )
        keep = set(columns)
        if prediction_column is not None:
            keep.add(prediction_column)
        names = [n for n in names if n in keep]
    results: list[ColumnDrift] = []
    prediction: ColumnDrift | None = None
    for name in names:
        column_settings = settings.columns.get(name, ColumnSettings())
        if column_settings.skip:
            continue
        result = _column(name, reference, current, ref_kinds, cur_kinds, settings)
        if name == prediction_column and name in ref_kinds and name in cur_kinds:
            prediction = result
        else:
            results.append(result)
    tested = [r for r in results if r.tested]
    drifted = sum(1 for r in tested if r.drifted)
    share = drifted / len(tested) if tested else 0.0
    return DriftReport(
        reference_rows=reference.rows,
        current_rows=current.rows,
        columns=results,
        drifted_count=drifted,
        drifted_share=share,
        dataset_drift=bool(tested) and share >= settings.share_threshold,
        share_threshold=settings.share_threshold,
        prediction=prediction,
    )


def _untested(name: str, kind: str, note: str, quality: ColumnQuality | None = None) -> ColumnDrift:
    return ColumnDrift(name, kind, "none", 0.0, 0.0, False, None, note, quality or ColumnQuality())


def _column(
    name: str,
    reference: ColumnSource,
    current: ColumnSource,
    ref_kinds: Mapping[str, str],
    cur_kinds: Mapping[str, str],
    settings: DriftSettings,
) -> ColumnDrift:
    if name not in cur_kinds:
        missing = ColumnQuality(missing_share=1.0 if current.rows else 0.0)
        return _untested(name, ref_kinds[name], "not in the current data", missing)
    if name not in ref_kinds:
        type_errors = current.type_errors(name)
        return _untested(
            name,
            cur_kinds[name],
            "not in the reference data",
            ColumnQuality(type_errors=type_errors),
        )
    ref_kind, cur_kind = ref_kinds[name], cur_kinds[name]
    type_errors = current.type_errors(name)
    if ref_kind == "other" or cur_kind == "other":
        return _untested(
            name,
            ref_kind,
            "not a scalar column (e.g. a vector): not tested",
            ColumnQuality(type_errors=type_errors),
        )
    kind = ref_kind
    if ref_kind != cur_kind:
        # A side with no values at all carries no type: compare on the other's kind.
        if _all_missing(current, name, cur_kind):
            kind = ref_kind
        elif _all_missing(reference, name, ref_kind):
            kind = cur_kind
        else:
            present = current.rows
            return _untested(
                name,
                ref_kind,
                f"type changed: {ref_kind} in the reference, {cur_kind} in the current data",
                ColumnQuality(type_errors=present + type_errors),
            )
    result = (
        _numeric(name, reference, current, settings)
        if kind == "numeric"
        else _categorical(name, reference, current, settings)
    )
    if type_errors:
        result = replace(result, quality=replace(result.quality, type_errors=type_errors))
    ref_errors = reference.type_errors(name)
    if ref_errors:
        note = f"{ref_errors} reference values of the wrong type"
        result = replace(result, note=f"{result.note}; {note}" if result.note else note)
    return result


def _all_missing(source: ColumnSource, name: str, kind: str) -> bool:
    if source.rows == 0:
        return True
    if kind == "numeric":
        return len(dist.numbers(source.column(name)).values) == 0
    return _counts(source, name).present == 0


def _counts(source: ColumnSource, name: str) -> dist.Counts:
    if isinstance(source, EncodedColumns):
        categories, codes = source.encoded(name)
        return dist.counts_from_codes(categories, codes, source.rows)
    return dist.counts(source.column(name))


def _pick(
    name: str, auto_method: str, small: str, large: str, size: int, settings: DriftSettings
) -> tuple[str, float]:
    override = settings.columns.get(name, ColumnSettings())
    method = override.method or auto_method
    if method == "auto":
        method = small if size <= settings.small_sample_rows else large
    threshold = override.threshold
    if threshold is None:
        threshold = settings.thresholds.get(method, DEFAULT_THRESHOLDS[method])
    return method, threshold


def _verdict(method: str, statistic: float, p_value: float | None, threshold: float) -> bool:
    if method in P_VALUE_METHODS:
        return p_value is not None and p_value < threshold
    return statistic >= threshold


def _numeric(
    name: str, reference: ColumnSource, current: ColumnSource, settings: DriftSettings
) -> ColumnDrift:
    # Sorting is most of the work; numpy releases the GIL, so sort one side in a thread
    # while the other side is read and sorted here.
    with ThreadPoolExecutor(max_workers=1) as pool:
        sorting = pool.submit(dist.numbers, reference.column(name))
        cur = dist.numbers(current.column(name))
        ref = sorting.result()
    quality = ColumnQuality(missing_share=cur.missing / cur.rows if cur.rows else 0.0)
    if len(cur.values) == 0:
        return _untested(name, "numeric", _no_values("current", cur.rows), quality)
    if len(ref.values) == 0:
        return _untested(name, "numeric", _no_values("reference", ref.rows), quality)
    ref_values, cur_values = ref.values, cur.values
    low, high = ref_values[0], ref_values[-1]
    below = int(np.searchsorted(cur_values, low, side="left"))
    above = len(cur_values) - int(np.searchsorted(cur_values, high, side="right"))
    quality = replace(quality, out_of_range_share=(below + above) / len(cur_values))
    histogram = dist.numeric_histogram(ref_values, cur_values)
    if low == high:
        equal = int(np.searchsorted(cur_values, low, "right") - np.searchsorted(cur_values, low))
        return _constant(
            name, "numeric", f"{low:g}", 1 - equal / len(cur_values), quality, histogram
        )
    method, threshold = _pick(
        name,
        settings.numeric_method,
        "ks",
        "wasserstein",
        min(len(ref_values), len(cur_values)),
        settings,
    )
    p_value: float | None = None
    if method == "ks":
        statistic, p_value = dist.ks(ref_values, cur_values)
    elif method == "wasserstein":
        statistic = dist.wasserstein(ref_values, cur_values) / float(np.std(ref_values))
    elif method == "psi":
        statistic = dist.numeric_psi(ref_values, cur_values)
    else:
        raise InvalidArgument(
            f"drift method {method!r} of column {name!r} does not apply to numeric columns; "
            f"use one of {', '.join(NUMERIC_METHODS)}"
        )
    drifted = _verdict(method, statistic, p_value, threshold)
    return ColumnDrift(
        name, "numeric", method, statistic, threshold, drifted, p_value, "", quality, histogram
    )


def _categorical(
    name: str, reference: ColumnSource, current: ColumnSource, settings: DriftSettings
) -> ColumnDrift:
    ref = _counts(reference, name)
    cur = _counts(current, name)
    quality = ColumnQuality(missing_share=cur.missing / cur.rows if cur.rows else 0.0)
    if cur.present == 0:
        return _untested(name, "categorical", _no_values("current", cur.rows), quality)
    if ref.present == 0:
        return _untested(name, "categorical", _no_values("reference", ref.rows), quality)
    categories, ref_counts, cur_counts = dist.aligned(ref, cur)
    unseen = int(cur_counts[ref_counts == 0].sum())
    quality = replace(quality, unseen_share=unseen / cur.present)
    histogram = dist.categorical_histogram(categories, ref_counts, cur_counts)
    if len(ref.categories) == 1:
        same = int(cur_counts[ref_counts > 0].sum())
        value = repr(str(ref.categories[0]))
        return _constant(name, "categorical", value, 1 - same / cur.present, quality, histogram)
    method, threshold = _pick(
        name,
        settings.categorical_method,
        "chisquare",
        "jensenshannon",
        min(ref.present, cur.present),
        settings,
    )
    p_value: float | None = None
    if method == "chisquare":
        statistic, p_value = dist.chisquare(ref_counts, cur_counts)
    elif method == "jensenshannon":
        statistic = dist.jensenshannon(ref_counts, cur_counts)
    elif method == "psi":
        statistic = dist.psi(ref_counts, cur_counts)
    else:
        raise InvalidArgument(
            f"drift method {method!r} of column {name!r} does not apply to categorical "
            f"columns; use one of {', '.join(CATEGORICAL_METHODS)}"
        )
    drifted = _verdict(method, statistic, p_value, threshold)
    return ColumnDrift(
        name, "categorical", method, statistic, threshold, drifted, p_value, "", quality, histogram
    )


def _no_values(side: str, rows: int) -> str:
    return f"the {side} data has no rows" if rows == 0 else f"the {side} column has no values"


def _constant(
    name: str,
    kind: str,
    value: str,
    differing: float,
    quality: ColumnQuality,
    histogram: dict[str, Any],
) -> ColumnDrift:
    """The reference holds one value: drift is any current value that differs from it."""
    if differing == 0:
        note = f"reference and current are constant ({value})"
    else:
        note = f"reference is constant ({value}); {differing:.2%} of current values differ"
    return ColumnDrift(
        name, kind, "constant", differing, 0.0, differing > 0, None, note, quality, histogram
    )
