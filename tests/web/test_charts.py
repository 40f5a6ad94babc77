"""The server-side SVG charts: scales, gaps, degenerate data, escaping and accessibility."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from corral.web.charts import (
    Bar,
    Series,
    Threshold,
    bar_chart,
    format_value,
    line_chart,
    nice_ticks,
    tick_text,
    time_labels,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def paths(root: ET.Element) -> list[str]:
    return [p.attrib["d"] for p in root.iter(f"{SVG}path")]


def y_ticks(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "tick-y"]


def points(root: ET.Element) -> list[tuple[float, float]]:
    return [(float(c.attrib["cx"]), float(c.attrib["cy"])) for c in root.iter(f"{SVG}circle")]


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    assert nice_ticks(0, 97) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0.81, 0.93) == [0.8, 0.825, 0.85, 0.875, 0.9, 0.925, 0.95]
    ticks = nice_ticks(-3.2, 7.9)
    assert ticks[0] <= -3.2
    assert ticks[-1] >= 7.9


@pytest.mark.parametrize("value", [5.0, -2.0, 1e-9, 0.9])
def test_nice_ticks_widen_an_empty_range_instead_of_dividing_by_zero(value: float) -> None:
    ticks = nice_ticks(value, value)

    assert len(ticks) >= 2
    assert ticks[0] < value < ticks[-1]


def test_nice_ticks_of_only_zeros_start_at_zero() -> None:
    assert nice_ticks(0, 0) == [0, 0.2, 0.4, 0.6, 0.8, 1]


@pytest.mark.parametrize(("low", "high"), [(0.9991, 0.9999), (0.81, 0.93), (0, 97), (1e4, 5e4)])
def test_tick_labels_differ_from_their_neighbours(low: float, high: float) -> None:
    ticks = nice_ticks(low, high)
    labels = [tick_text(t, ticks) for t in ticks]

    assert len(set(labels)) == len(labels), labels
    for label, tick in zip(labels, ticks, strict=True):
        assert float(label.replace(",", "")) == pytest.approx(tick, abs=1e-9)


def test_a_share_axis_stays_within_its_limits() -> None:
    chart = line_chart("c", "Precision", ["a"], [Series("p", [0.95])], limits=(0.0, 1.0))

    assert max(float(t) for t in y_ticks(parse(chart.svg))) <= 1.0


def test_nice_ticks_refuse_infinite_bounds() -> None:
    with pytest.raises(ValueError, match="not finite"):
        nice_ticks(0, math.inf)


def test_a_line_chart_scales_values_into_the_plot_top_up() -> None:
    chart = line_chart("c", "Requests", ["a", "b", "c"], [Series("requests", [0, 50, 100])])
    root = parse(chart.svg)

    (low_x, low_y), (_, mid_y), (high_x, high_y) = points(root)
    assert low_x < high_x
    assert high_y < mid_y < low_y  # SVG y grows downwards
    assert mid_y == pytest.approx((low_y + high_y) / 2)
    assert y_ticks(root)[0] == "0"
    assert y_ticks(root)[-1] == "100"


def test_missing_and_non_finite_values_break_the_line() -> None:
    values = [1.0, 2.0, None, math.nan, 3.0, 4.0]
    chart = line_chart("c", "Gaps", list("abcdef"), [Series("s", values)])
    root = parse(chart.svg)

    (path,) = paths(root)
    assert path.count("M") == 2  # two separate runs
    assert path.count("L") == 2
    assert len(points(root)) == 4
    assert [row[1] for row in chart.rows] == ["1", "2", "—", "—", "3", "4"]


def test_a_single_point_is_drawn_as_a_marker_in_the_middle() -> None:
    chart = line_chart("c", "One", ["only"], [Series("s", [0.7])])
    root = parse(chart.svg)

    ((x, y),) = points(root)
    assert x == pytest.approx((60 + 720 - 18) / 2)
    assert math.isfinite(y)
    assert not chart.empty


def test_all_equal_values_draw_a_flat_line_inside_the_plot() -> None:
    chart = line_chart("c", "Flat", list("abcd"), [Series("s", [0.9] * 4)])
    root = parse(chart.svg)

    ys = {y for _, y in points(root)}
    assert len(ys) == 1
    (y,) = ys
    assert 16 < y < 240 - 36


def test_all_zero_values_and_no_values_do_not_crash() -> None:
    zeros = line_chart("z", "Zero", list("ab"), [Series("s", [0, 0])], include_zero=True)
    assert len(points(parse(zeros.svg))) == 2
    assert y_ticks(parse(zeros.svg))[0] == "0.0"

    empty = line_chart("e", "Empty", list("ab"), [Series("s", [None, None])])
    assert empty.empty
    assert "no data in this window" in empty.svg
    assert paths(parse(empty.svg)) == []

    nothing = line_chart("n", "No points", [], [Series("s", [])])
    assert nothing.empty
    assert nothing.rows == ()


def test_every_series_gets_a_group_legend_and_table_column() -> None:
    chart = line_chart(
        "lat",
        "Latency",
        ["t0", "t1"],
        [Series("p50", [1, 2]), Series("p95", [3, 4]), Series("estimated", [5, 6], dashed=True)],
        unit="ms",
    )
    root = parse(chart.svg)

    groups = [g for g in root.iter(f"{SVG}g") if "series" in g.attrib.get("class", "").split()]
    assert [g.attrib["data-series"] for g in groups] == ["p50", "p95", "estimated"]
    assert "is-dashed" in groups[2].attrib["class"]
    assert chart.series_count == 3
    assert [item.name for item in chart.legend] == ["p50", "p95", "estimated"]
    assert chart.columns == ("Time", "p50 (ms)", "p95 (ms)", "estimated (ms)")
    assert chart.rows == (("t0", "1", "3", "5"), ("t1", "2", "4", "6"))
    hover = [t.text for t in root.iter(f"{SVG}title")]
    assert "p95 · t1: 4 ms" in hover


def test_a_threshold_is_drawn_and_stretches_the_axis_to_show_it() -> None:
    chart = line_chart(
        "acc",
        "Accuracy",
        ["a", "b"],
        [Series("accuracy", [0.95, 0.97])],
        thresholds=[Threshold(0.9, "objective >= 0.9")],
    )
    root = parse(chart.svg)

    (group,) = [g for g in root.iter(f"{SVG}g") if g.attrib.get("class") == "threshold"]
    line = group.find(f"{SVG}line")
    assert line is not None
    assert group.findtext(f"{SVG}text") == "objective >= 0.9"
    assert float(y_ticks(root)[0]) <= 0.9
    # The threshold sits below the points (a larger y), since 0.9 < 0.95.
    assert float(line.attrib["y1"]) > max(y for _, y in points(root))


def test_series_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(ValueError, match="series 's' has 1 values for 2 x labels"):
        line_chart("c", "Bad", ["a", "b"], [Series("s", [1])])


def test_text_is_escaped_and_the_chart_is_labelled_for_assistive_technology() -> None:
    chart = line_chart(
        "c", "<b>Title</b>", ["<x>"], [Series('"><script>', [1])], description="d & e"
    )
    svg = str(chart.svg)

    assert "<script>" not in svg
    assert "<b>" not in svg
    root = parse(svg)
    assert root.attrib["role"] == "img"
    assert root.attrib["aria-labelledby"] == "c-title c-desc"
    assert root.findtext(f"{SVG}title") == "<b>Title</b>"
    assert root.findtext(f"{SVG}desc") == "d & e"
    assert "style=" not in svg  # the pages' CSP forbids inline style


def test_a_bar_chart_highlights_flagged_bars_and_draws_the_threshold() -> None:
    bars = [Bar("age", 0.05), Bar("income", 0.4, highlight=True), Bar("city", None)]
    chart = bar_chart("d", "Drift", bars, threshold=Threshold(0.1, "threshold 0.1"))
    root = parse(chart.svg)

    groups = {g.attrib["data-label"]: g for g in root.iter(f"{SVG}g") if "data-label" in g.attrib}
    assert set(groups) == {"age", "income", "city"}
    assert groups["income"].attrib["class"] == "bar is-highlight"
    assert groups["age"].attrib["class"] == "bar"
    assert groups["city"].find(f"{SVG}rect") is None  # no value, no bar
    widths = {
        name: float(g.find(f"{SVG}rect").attrib["width"])  # type: ignore[union-attr]
        for name, g in groups.items()
        if name != "city"
    }
    assert widths["income"] == pytest.approx(widths["age"] * 8, rel=0.05)
    (line,) = [g for g in root.iter(f"{SVG}g") if g.attrib.get("class") == "threshold"]
    assert line.findtext(f"{SVG}text") == "threshold 0.1"
    assert chart.rows == (("age", "0.05", "no"), ("income", "0.4", "yes"), ("city", "—", "no"))


def test_a_bar_chart_of_zeros_or_of_nothing_still_draws() -> None:
    zeros = bar_chart("z", "Zero", [Bar("a", 0.0), Bar("b", 0.0)])
    assert len(list(parse(zeros.svg).iter(f"{SVG}rect"))) == 2
    nothing = bar_chart("n", "None", [])
    assert nothing.empty
    parse(nothing.svg)


def test_values_are_formatted_short_and_missing_ones_as_a_dash() -> None:
    assert format_value(None) == "—"
    assert format_value(math.nan) == "—"
    assert format_value(0.912345) == "0.912"
    assert format_value(12345.6) == "12,346"
    assert format_value(0) == "0"


def test_time_labels_are_utc_and_shorter_on_the_axis() -> None:
    start = datetime(2026, 11, 27, 22, tzinfo=UTC)
    hours = [start + timedelta(hours=i) for i in range(4)]

    full, short = time_labels(hours, 3600)
    assert full[0] == "2026-11-27 22:00 UTC"
    assert short[:3] == ["11-27 22:00", "11-27 23:00", "11-28 00:00"]

    full, short = time_labels(hours[:2], 3600)
    assert short == ["22:00", "23:00"]

    days = [start.replace(hour=0) + timedelta(days=i) for i in range(2)]
    full, short = time_labels(days, 86400)
    assert full == ["2026-11-27 UTC", "2026-11-28 UTC"]
    assert short == ["11-27", "11-28"]


def test_markup_is_one_svg_element_with_no_external_reference() -> None:
    chart = line_chart("c", "T", ["a", "b"], [Series("s", [1, 2])])
    svg = str(chart.svg)

    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert not re.search(r"(href|src)=", svg)
