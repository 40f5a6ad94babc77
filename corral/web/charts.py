"""Charts drawn on the server as inline SVG: line charts over time and horizontal bar charts.

No script and no inline style (the pages' CSP forbids both): colours come from CSS classes
(``series-0`` …, ``threshold``, ``is-highlight``) in the stylesheet, hover text from SVG
``<title>`` elements. Every chart carries a ``<title>``/``<desc>`` and the rows of a data
table that the page shows under it, so nothing is only in the picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from itertools import pairwise

from markupsafe import Markup

__all__ = [
    "Bar",
    "Chart",
    "LegendItem",
    "Series",
    "Threshold",
    "bar_chart",
    "format_value",
    "line_chart",
    "nice_ticks",
    "tick_text",
    "time_labels",
]

WIDTH = 720
LINE_HEIGHT = 240
MARGIN_LEFT = 60
MARGIN_RIGHT = 18
MARGIN_TOP = 16
MARGIN_BOTTOM = 36
BAR_ROW = 22
BAR_LABEL = 170
MAX_X_TICKS = 6
SERIES_CLASSES = 6  # series-0 … series-5 in the stylesheet, then they repeat


@dataclass(frozen=True, slots=True)
class Series:
    """One line: a value (or None for a gap) per point of the x axis."""

    name: str
    values: Sequence[float | None]
    dashed: bool = False  # e.g. an estimate drawn beside the realised figure


@dataclass(frozen=True, slots=True)
class Threshold:
    """A reference value drawn across the chart (an objective's threshold)."""

    value: float
    label: str


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a bar chart; ``highlight`` marks it (e.g. a drifted feature)."""

    label: str
    value: float | None
    highlight: bool = False
    detail: str = ""  # shown when hovering over the bar


@dataclass(frozen=True, slots=True)
class LegendItem:
    name: str
    css_class: str
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class Chart:
    """A drawn chart: its SVG, its legend and its data as table rows (formatted text)."""

    id: str
    title: str
    description: str
    svg: Markup
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    legend: tuple[LegendItem, ...] = ()
    series_count: int = 0
    empty: bool = False  # nothing to draw: every value was missing


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def format_value(value: float | None) -> str:
    """A figure for a label or a table cell: three significant digits, separators past 1000."""
    number = _finite(value)
    if number is None:
        return "—"
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    if number == 0:
        return "0"
    return f"{number:.3g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]`` (about ``count`` of them).

    An empty or reversed range is widened first, so equal values never divide by zero.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"tick range [{low}, {high}] is not finite")
    if high < low:
        low, high = high, low
    if high == low == 0:
        high = 1.0  # counts and rates of zero: keep the axis at zero, not below
    elif high == low:
        pad = abs(low) * 0.1
        low, high = low - pad, high + pad
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    ticks = []
    index = 0
    while True:
        tick = first + index * step
        if tick > last + step * 1e-6:
            break
        # Round away float noise such as 0.30000000000000004.
        ticks.append(round(tick, 12))
        index += 1
    return ticks


def time_labels(times: Sequence[datetime], bucket_seconds: int) -> tuple[list[str], list[str]]:
    """Full labels (table, hover) and short ones (axis ticks) for bucket start times, in UTC."""
    daily = bucket_seconds >= 86400 and bucket_seconds % 86400 == 0
    full = [t.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M") + " UTC" for t in times]
    if daily:
        short = [t.strftime("%m-%d") for t in times]
    else:
        days = {t.date() for t in times}
        short = [t.strftime("%H:%M" if len(days) <= 1 else "%m-%d %H:%M") for t in times]
    return full, short


def tick_text(value: float, ticks: Sequence[float]) -> str:
    """A tick's label with as many decimals as its neighbours need to differ."""
    step = min((b - a for a, b in pairwise(ticks)), default=0.0)
    if abs(value) >= 1000 or step <= 0:
        return format_value(value)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if round(step, decimals) != round(step, decimals + 1):
        decimals += 1  # steps such as 0.25
    return f"{value:.{decimals}f}"


def _clamp(ticks: list[float], limits: tuple[float, float] | None) -> list[float]:
    if limits is None:
        return ticks
    kept = [t for t in ticks if limits[0] - 1e-9 <= t <= limits[1] + 1e-9]
    return kept if len(kept) >= 2 else list(limits)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(text: str) -> str:
    return escape(text, quote=True)


def _open_svg(chart_id: str, title: str, description: str, height: int, kind: str) -> list[str]:
    return [
        f'<svg class="chart chart-{kind}" id="{_text(chart_id)}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-labelledby="{_text(chart_id)}-title {_text(chart_id)}-desc" '
        f'data-testid="chart" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{_text(chart_id)}-title">{_text(title)}</title>',
        f'<desc id="{_text(chart_id)}-desc">{_text(description)}</desc>',
    ]


@dataclass(frozen=True, slots=True)
class _Scale:
    low: float
    high: float
    out_low: float
    out_high: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low
        share = (value - self.low) / span if span else 0.5
        return self.out_low + share * (self.out_high - self.out_low)


def line_chart(
    chart_id: str,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    tick_labels: Sequence[str] | None = None,
    thresholds: Sequence[Threshold] = (),
    description: str = "",
    unit: str = "",
    include_zero: bool = False,
    limits: tuple[float, float] | None = None,
    height: int = LINE_HEIGHT,
) -> Chart:
    """Series over the same x points, with gaps where a value is None or not finite.

    Args:
        x_labels: one full label per point (table rows, hover text).
        tick_labels: shorter labels for the x axis (default ``x_labels``).
        include_zero: start the y axis at zero (counts, latencies).
        limits: the y axis never goes past these (e.g. ``(0, 1)`` for a share).
    """
    points = len(x_labels)
    for item in series:
        if len(item.values) != points:
            raise ValueError(
                f"series {item.name!r} has {len(item.values)} values for {points} x labels"
            )
    ticks_text = list(tick_labels) if tick_labels is not None else list(x_labels)
    clean = [[_finite(v) for v in item.values] for item in series]
    known = [v for values in clean for v in values if v is not None]
    empty = not known
    candidates = known + [t.value for t in thresholds if _finite(t.value) is not None]
    if include_zero:
        candidates.append(0.0)
    ticks = nice_ticks(min(candidates), max(candidates)) if candidates else [0.0, 1.0]
    ticks = _clamp(ticks, limits)
    left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, height - MARGIN_BOTTOM
    y = _Scale(ticks[0], ticks[-1], bottom, top)

    def x(index: int) -> float:
        return (left + right) / 2 if points <= 1 else left + (right - left) * index / (points - 1)

    out = _open_svg(chart_id, title, description or title, height, "line")
    out.append('<g class="grid">')
    for tick in ticks:
        out.append(
            f'<line x1="{left}" x2="{right}" y1="{_num(y(tick))}" y2="{_num(y(tick))}"/>'
            f'<text class="tick-y" x="{left - 6}" y="{_num(y(tick) + 4)}" text-anchor="end">'
            f"{_text(tick_text(tick, ticks))}</text>"
        )
    out.append("</g>")
    out.append('<g class="axis-x">')
    out.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}"/>')
    if points:
        count = min(points, MAX_X_TICKS)
        shown = sorted({round(i * (points - 1) / max(count - 1, 1)) for i in range(count)})
        for index in shown:
            anchor = "middle"
            if points > 1 and index == 0:
                anchor = "start"
            elif points > 1 and index == points - 1:
                anchor = "end"
            out.append(
                f'<text class="tick-x" x="{_num(x(index))}" y="{bottom + 18}" '
                f'text-anchor="{anchor}">{_text(ticks_text[index])}</text>'
            )
    out.append("</g>")
    for threshold in thresholds:
        level = _finite(threshold.value)
        if level is None:
            continue
        out.append(
            f'<g class="threshold"><line x1="{left}" x2="{right}" y1="{_num(y(level))}" '
            f'y2="{_num(y(level))}"/><text x="{right - 4}" y="{_num(y(level) - 4)}" '
            f'text-anchor="end">{_text(threshold.label)}</text></g>'
        )
    legend = []
    for number, (item, values) in enumerate(zip(series, clean, strict=True)):
        css = f"series-{number % SERIES_CLASSES}" + (" is-dashed" if item.dashed else "")
        legend.append(LegendItem(item.name, css, item.dashed))
        out.append(f'<g class="series {css}" data-series="{_text(item.name)}">')
        path = []
        pen_down = False
        for index, value in enumerate(values):
            if value is None:
                pen_down = False
                continue
            path.append(f"{'L' if pen_down else 'M'}{_num(x(index))} {_num(y(value))}")
            pen_down = True
        if path:
            out.append(f'<path class="line" d="{" ".join(path)}"/>')
        for index, value in enumerate(values):
            if value is None:
                continue
            hover = f"{item.name} · {x_labels[index]}: {format_value(value)}{unit and ' ' + unit}"
            out.append(
                f'<circle class="point" cx="{_num(x(index))}" cy="{_num(y(value))}" r="2.5">'
                f"<title>{_text(hover)}</title></circle>"
            )
        out.append("</g>")
    if empty:
        out.append(
            f'<text class="no-data" x="{(left + right) / 2:.0f}" y="{(top + bottom) / 2:.0f}" '
            'text-anchor="middle">no data in this window</text>'
        )
    out.append("</svg>")
    rows = tuple(
        (label, *(format_value(values[index]) for values in clean))
        for index, label in enumerate(x_labels)
    )
    return Chart(
        id=chart_id,
        title=title,
        description=description or title,
        svg=Markup("".join(out)),  # every piece of text in it is escaped above
        columns=("Time", *(f"{item.name} ({unit})" if unit else item.name for item in series)),
        rows=rows,
        legend=tuple(legend),
        series_count=len(series),
        empty=empty,
    )


def bar_chart(
    chart_id: str,
    title: str,
    bars: Sequence[Bar],
    *,
    threshold: Threshold | None = None,
    description: str = "",
    axis_label: str = "",
    value_column: str = "Value",
) -> Chart:
    """Horizontal bars, one row per label, from zero; highlighted bars get ``is-highlight``."""
    height = MARGIN_TOP + MARGIN_BOTTOM + BAR_ROW * max(len(bars), 1)
    values = [_finite(bar.value) for bar in bars]
    known = [v for v in values if v is not None]
    candidates = [0.0, *known]
    if threshold is not None and _finite(threshold.value) is not None:
        candidates.append(threshold.value)
    ticks = nice_ticks(min(candidates), max(candidates))
    left, right = BAR_LABEL, WIDTH - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, height - MARGIN_BOTTOM
    x = _Scale(ticks[0], ticks[-1], left, right)
    out = _open_svg(chart_id, title, description or title, height, "bar")
    out.append('<g class="grid">')
    for tick in ticks:
        out.append(
            f'<line x1="{_num(x(tick))}" x2="{_num(x(tick))}" y1="{top}" y2="{bottom}"/>'
            f'<text class="tick-x" x="{_num(x(tick))}" y="{bottom + 16}" text-anchor="middle">'
            f"{_text(tick_text(tick, ticks))}</text>"
        )
    out.append("</g>")
    if axis_label:
        out.append(
            f'<text class="unit" x="{right}" y="{height - 4}" text-anchor="end">'
            f"{_text(axis_label)}</text>"
        )
    for index, (bar, value) in enumerate(zip(bars, values, strict=True)):
        row_top = top + index * BAR_ROW
        middle = row_top + BAR_ROW / 2
        css = "bar is-highlight" if bar.highlight else "bar"
        label = bar.label if len(bar.label) <= 24 else bar.label[:23] + "…"
        hover = f"{bar.label}: {format_value(value)}" + (f" ({bar.detail})" if bar.detail else "")
        out.append(
            f'<g class="{css}" data-label="{_text(bar.label)}"><title>{_text(hover)}</title>'
        )
        out.append(
            f'<text class="bar-label" x="{left - 8}" y="{_num(middle + 4)}" text-anchor="end">'
            f"{_text(label)}</text>"
        )
        if value is not None:
            start, end = sorted((x(0.0), x(value)))
            out.append(
                f'<rect x="{_num(start)}" y="{_num(row_top + 4)}" '
                f'width="{_num(max(end - start, 1.0))}" height="{BAR_ROW - 8}"/>'
            )
        out.append(
            f'<text class="bar-value" x="{_num(x(value if value is not None else 0.0) + 4)}" '
            f'y="{_num(middle + 4)}">{_text(format_value(value))}</text></g>'
        )
    if threshold is not None and _finite(threshold.value) is not None:
        level = _num(x(threshold.value))
        out.append(
            f'<g class="threshold"><line x1="{level}" x2="{level}" y1="{top - 4}" '
            f'y2="{bottom}"/><text x="{level}" y="{top - 5}" text-anchor="middle">'
            f"{_text(threshold.label)}</text></g>"
        )
    out.append("</svg>")
    rows = tuple(
        (bar.label, format_value(value), "yes" if bar.highlight else "no")
        for bar, value in zip(bars, values, strict=True)
    )
    return Chart(
        id=chart_id,
        title=title,
        description=description or title,
        svg=Markup("".join(out)),  # every piece of text in it is escaped above
        columns=("Name", value_column, "Flagged"),
        rows=rows,
        legend=(),
        series_count=1 if bars else 0,
        empty=not known,
    )
