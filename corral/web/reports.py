"""A drift report as one self-contained HTML page: inline CSS and SVG, no script, no CDN."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from corral._version import __version__
from corral.monitoring.drift import ColumnDrift, DriftReport

__all__ = ["render_drift_report"]

_HERE = Path(__file__).parent
CHART_WIDTH = 360
CHART_HEIGHT = 120
_GAP = 2


@dataclass(frozen=True, slots=True)
class _Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    share: float


def _bars(histogram: dict[str, Any]) -> dict[str, Any] | None:
    """Reference and current bars side by side per bin, scaled to the tallest bar."""
    bins = list(histogram.get("bins") or [])
    if not bins:
        return None
    reference = [float(x or 0) for x in histogram.get("reference", [])]
    current = [float(x or 0) for x in histogram.get("current", [])]
    tallest = max([*reference, *current, 1e-12])
    slot = CHART_WIDTH / len(bins)
    width = max((slot - _GAP) / 2, 0.5)

    def bar(index: int, share: float, offset: float) -> _Bar:
        height = share / tallest * CHART_HEIGHT
        return _Bar(
            index * slot + offset, CHART_HEIGHT - height, width, height, str(bins[index]), share
        )

    return {
        "reference": [bar(i, s, 0.0) for i, s in enumerate(reference)],
        "current": [bar(i, s, width) for i, s in enumerate(current)],
        "first": str(bins[0]),
        "last": str(bins[-1]),
    }


def _quality(column: ColumnDrift) -> str:
    return "; ".join(column.quality.problems())


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(bars=_bars, quality=_quality)
    return env


def render_drift_report(report: DriftReport, *, title: str) -> str:
    """The report as a standalone HTML page (summary table, then one chart per column)."""
    columns = list(report.columns)
    if report.prediction is not None:
        columns.append(report.prediction)
    template = _environment().get_template("drift_report.html")
    return template.render(
        title=title,
        report=report,
        columns=columns,
        prediction=report.prediction,
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        version=__version__,
    )
