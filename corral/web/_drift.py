"""The drift section of the monitoring page: bar charts by method, a row per column."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corral.errors import CorralError
from corral.web._values import count, percent, plain, to_number
from corral.web.charts import Bar, Chart, Series, Threshold, bar_chart, format_value, line_chart

UNTESTED = "none"  # the method of a column the drift report could not test (see its note)
# A constant reference is judged by "does any current value differ" (see the row's note),
# a statistic with no scale to chart.
UNCHARTED = frozenset({UNTESTED, "constant"})
# -log10 of a p-value is capped here: a p-value of 0 would otherwise draw an infinite bar.
MAX_EVIDENCE = 12.0


@dataclass(frozen=True, slots=True)
class DriftRow:
    name: str
    kind: str
    method: str
    statistic: str
    p_value: str
    threshold: str
    drifted: bool
    tested: bool
    missing: str
    out_of_range: str
    unseen: str
    type_errors: str
    note: str
    is_prediction: bool = False
    histogram: Chart | None = None  # reference beside current distribution


@dataclass(frozen=True, slots=True)
class DriftView:
    """A drift report laid out: a sentence, bar charts by method, one row per column."""

    summary: str
    dataset_drift: bool
    reference_rows: str
    current_rows: str
    charts: tuple[Chart, ...]
    rows: tuple[DriftRow, ...]
    error: str = ""
    empty: bool = False


def drift_view(svc: Any, name: str, window: str, version: int | None, reference: str) -> DriftView:
    """Drift of the last ``window`` of logged inputs; a refusal is shown, not raised."""
    try:
        report = plain(svc.drift(name, reference=reference or None, window=window, version=version))
    except CorralError as exc:
        return DriftView("", False, "—", "—", (), (), error=exc.message)
    return report_view(report)


def report_view(report: Mapping[str, Any]) -> DriftView:
    """A drift report (``DriftReport.to_dict()``) laid out for the page."""
    columns = [plain(c) for c in report.get("columns", [])]
    prediction = report.get("prediction")
    every = columns + ([plain(prediction)] if prediction else [])
    rows = tuple(_drift_row(c, False, n) for n, c in enumerate(columns))
    if prediction:
        rows += (_drift_row(every[-1], True, len(columns)),)
    tested = sum(1 for c in columns if str(c.get("method") or UNTESTED) != UNTESTED)
    drifted = int(to_number(report.get("drifted_count")) or 0)
    share = to_number(report.get("drifted_share")) or 0.0
    threshold = to_number(report.get("share_threshold"))
    dataset = bool(report.get("dataset_drift"))
    summary = f"{drifted} of {tested} tested features drifted ({share * 100:.0f} %)" + (
        f"; dataset drift is declared at {threshold * 100:.0f} %" if threshold is not None else ""
    )
    current_rows = int(to_number(report.get("current_rows")) or 0)
    return DriftView(
        summary=summary,
        dataset_drift=dataset,
        reference_rows=count(report.get("reference_rows")),
        current_rows=count(current_rows),
        charts=tuple(_drift_charts(every)),
        rows=rows,
        empty=current_rows == 0 or not every,
    )


def _drift_row(column: Mapping[str, Any], is_prediction: bool, index: int) -> DriftRow:
    quality = column.get("quality") or {}
    return DriftRow(
        histogram=_histogram(column, index),
        name=str(column.get("name", "")),
        kind=str(column.get("kind", "")),
        method=str(column.get("method", "") or "—"),
        statistic=format_value(to_number(column.get("statistic"))),
        p_value=format_value(to_number(column.get("p_value"))),
        threshold=format_value(to_number(column.get("threshold"))),
        drifted=bool(column.get("drifted")),
        tested=str(column.get("method") or UNTESTED) != UNTESTED,
        missing=percent(quality.get("missing_share")),
        out_of_range=percent(quality.get("out_of_range_share")),
        unseen=percent(quality.get("unseen_share")),
        type_errors=count(quality.get("type_errors")),
        note=str(column.get("note", "") or ""),
        is_prediction=is_prediction,
    )


def _drift_charts(columns: Sequence[Mapping[str, Any]]) -> list[Chart]:
    """One bar chart per method and threshold, so each has one threshold line.

    Tests judged by a p-value (KS, chi-square) draw ``-log10 p``: higher is stronger
    evidence of drift, like the distances of the other methods.
    """
    groups: dict[tuple[str, float | None, bool], list[Mapping[str, Any]]] = {}
    for column in columns:
        method = str(column.get("method") or "")
        if not method or method in UNCHARTED:
            continue
        # KS and chi-square report the p-value their threshold bounds; distances report none.
        by_p = column.get("p_value") is not None
        groups.setdefault((method, to_number(column.get("threshold")), by_p), []).append(column)
    charts = []
    for number, ((method, threshold, by_p), members) in enumerate(
        sorted(groups.items(), key=_group_order)
    ):
        bars = [
            Bar(
                str(c.get("name", "")),
                _evidence(c.get("p_value")) if by_p else to_number(c.get("statistic")),
                bool(c.get("drifted")),
                f"p = {format_value(to_number(c.get('p_value')))}" if by_p else method,
            )
            for c in members
        ]
        if by_p:
            line = _evidence(threshold) if threshold else None
            label = f"p < {format_value(threshold)}"
            axis = "−log₁₀ p-value (higher: stronger evidence of drift)"
            column_name = "−log₁₀ p"
        else:
            line = threshold
            label = f"threshold {format_value(threshold)}"
            axis = f"{method} statistic"
            column_name = "Statistic"
        charts.append(
            bar_chart(
                f"chart-drift-{number}",
                f"Drift by feature: {method}",
                bars,
                threshold=Threshold(line, label) if line is not None else None,
                description=f"{method} per feature; drifted features are highlighted. {axis}.",
                axis_label=axis,
                value_column=column_name,
            )
        )
    return charts


def _histogram(column: Mapping[str, Any], index: int) -> Chart | None:
    """The column's reference and current distributions over the report's bins."""
    found = column.get("histogram") or {}
    bins = [str(b) for b in found.get("bins") or []]
    reference = list(found.get("reference") or [])
    current = list(found.get("current") or [])
    if not bins or len(reference) != len(bins) or len(current) != len(bins):
        return None
    name = str(column.get("name", ""))
    edges = [to_number(e) for e in found.get("edges") or []]
    # Numeric bins are ticked by their lower edge; their full range is in the table.
    ticks = [format_value(e) for e in edges[:-1]] if len(edges) == len(bins) + 1 else bins
    return line_chart(
        f"chart-histogram-{index}",
        f"Distribution of {name}",
        bins,
        [
            Series("reference", [to_number(v) for v in reference], dashed=True),
            Series("current", [to_number(v) for v in current]),
        ],
        tick_labels=ticks,
        description=f"Share of rows in each bin of {name}, in the reference and now.",
        include_zero=True,
        limits=(0.0, 1.0),
        height=180,
    )


def _group_order(item: tuple[tuple[str, float | None, bool], Any]) -> tuple[str, float]:
    (method, threshold, _), _members = item
    return method, threshold if threshold is not None else -1.0


def _evidence(p_value: Any) -> float | None:
    number = to_number(p_value)
    if number is None:
        return None
    return min(MAX_EVIDENCE, -math.log10(max(number, 10**-MAX_EVIDENCE)))
