from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats
from scipy.spatial import distance

from corral.errors import InvalidArgument
from corral.monitoring import _distributions as dist
from corral.monitoring.drift import DriftReport, DriftSettings, drift_report
from tests.monitoring.drift_data import DRIFTED, drift_tables


class ArrayColumns:
    """Columns held in memory: the ColumnSource of plain numpy arrays."""

    def __init__(
        self, columns: dict[str, npt.NDArray[Any]], type_errors: dict[str, int] | None = None
    ) -> None:
        self._columns = columns
        self._type_errors = type_errors or {}

    @property
    def rows(self) -> int:
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def kinds(self) -> dict[str, str]:
        return {
            name: "numeric" if values.dtype.kind in "fi" else "categorical"
            for name, values in self._columns.items()
        }

    def column(self, name: str) -> npt.NDArray[Any]:
        values = self._columns[name]
        return values.astype(np.float64) if values.dtype.kind in "fi" else values

    def type_errors(self, name: str) -> int:
        return self._type_errors.get(name, 0)


def report_of(ref: dict[str, Any], cur: dict[str, Any], **settings: Any) -> DriftReport:
    return drift_report(
        ArrayColumns(ref),
        ArrayColumns(cur),
        DriftSettings.from_dict(settings) if settings else None,
    )


def by_name(report: DriftReport) -> dict[str, Any]:
    return {c.name: c for c in report.columns}


@pytest.mark.parametrize("rows", [10_000, 100_000])
def test_defaults_flag_exactly_the_injected_drift(rows: int) -> None:
    ref, cur = drift_tables(rows, seed=rows)
    report = report_of(ref, cur)
    assert sorted(c.name for c in report.columns if c.drifted) == sorted(DRIFTED)
    assert report.drifted_count == 5
    assert report.drifted_share == pytest.approx(5 / 25)
    assert not report.dataset_drift
    methods = {c.method for c in report.columns}
    assert methods == {"wasserstein", "jensenshannon"}


def test_small_samples_use_ks_and_chisquare() -> None:
    ref, cur = drift_tables(800, seed=3)
    report = report_of(ref, cur)
    columns = by_name(report)
    assert columns["stable_0"].method == "ks"
    assert columns["category_0"].method == "chisquare"
    assert columns["mean_shift"].drifted
    assert columns["mean_shift"].p_value < 0.05
    assert columns["proportions"].drifted


def test_wasserstein_matches_scipy_on_unequal_sizes() -> None:
    rng = np.random.default_rng(1)
    a, b = np.sort(rng.normal(size=1234)), np.sort(rng.exponential(size=777))
    assert dist.wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)
    c = np.sort(rng.normal(size=1234))
    assert dist.wasserstein(a, c) == pytest.approx(stats.wasserstein_distance(a, c), rel=1e-9)


def test_ks_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    a, b = np.sort(rng.normal(size=300)), np.sort(rng.normal(0.3, 1, size=400))
    expected = stats.ks_2samp(a, b)
    assert dist.ks(a, b) == pytest.approx((expected.statistic, expected.pvalue))


def test_psi_is_zero_for_same_data_and_large_for_shifted() -> None:
    rng = np.random.default_rng(3)
    a = np.sort(rng.normal(size=20_000))
    assert dist.numeric_psi(a, a) == pytest.approx(0.0, abs=1e-12)
    assert dist.numeric_psi(a, np.sort(a + 1)) > 0.5


def test_psi_method_flags_shift_through_column_settings() -> None:
    ref, cur = drift_tables(5000, seed=4)
    report = report_of(ref, cur, columns={"mean_shift": {"method": "psi"}})
    column = by_name(report)["mean_shift"]
    assert column.method == "psi"
    assert column.threshold == 0.2
    assert column.drifted


def test_jensenshannon_matches_scipy_on_categories() -> None:
    ref = {"c": np.array(["a"] * 60 + ["b"] * 40, dtype=object)}
    cur = {"c": np.array(["a"] * 30 + ["b"] * 50 + ["z"] * 20, dtype=object)}
    report = report_of(ref, cur, categorical_method="jensenshannon")
    column = by_name(report)["c"]
    expected = distance.jensenshannon([60, 40, 0], [30, 50, 20])
    assert column.statistic == pytest.approx(expected)
    assert column.drifted
    assert column.quality.unseen_share == pytest.approx(0.2)


def test_threshold_override_changes_the_verdict() -> None:
    ref, cur = drift_tables(5000, seed=5)
    report = report_of(ref, cur, thresholds={"wasserstein": 0.6})
    assert not by_name(report)["mean_shift"].drifted
    assert by_name(report)["proportions"].drifted


def test_share_threshold_decides_dataset_drift() -> None:
    ref, cur = drift_tables(5000, seed=6)
    assert report_of(ref, cur, share_threshold=0.2).dataset_drift
    assert not report_of(ref, cur, share_threshold=0.25).dataset_drift


def test_constant_column_gives_a_defined_answer() -> None:
    ref = {"x": np.full(2000, 3.0), "c": np.array(["k"] * 2000, dtype=object)}
    same = report_of(ref, {"x": np.full(1500, 3.0), "c": np.array(["k"] * 1500, dtype=object)})
    for column in same.columns:
        assert (column.method, column.statistic, column.drifted) == ("constant", 0.0, False)
        assert "constant" in column.note
    changed_x = np.full(1500, 3.0)
    changed_x[:15] = 4.0
    changed_c = np.array(["k"] * 1485 + ["j"] * 15, dtype=object)
    changed = by_name(report_of(ref, {"x": changed_x, "c": changed_c}))
    for name in ("x", "c"):
        assert changed[name].drifted
        assert changed[name].statistic == pytest.approx(0.01)
        assert "differ" in changed[name].note
    assert changed["x"].quality.out_of_range_share == pytest.approx(0.01)
    assert changed["c"].quality.unseen_share == pytest.approx(0.01)


def test_all_null_column_is_reported_not_tested() -> None:
    ref, cur = drift_tables(3000, seed=7)
    cur["stable_0"] = np.full(3000, np.nan)
    cur["category_0"] = np.array([None] * 3000, dtype=object)
    ref["stable_1"] = np.full(3000, np.nan)
    report = report_of(ref, cur)
    columns = by_name(report)
    for name in ("stable_0", "category_0"):
        assert (columns[name].method, columns[name].drifted) == ("none", False)
        assert columns[name].quality.missing_share == 1.0
        assert "current column has no values" in columns[name].note
    assert "reference column has no values" in columns["stable_1"].note
    assert report.drifted_share == pytest.approx(5 / 22)


def test_missing_and_infinite_values_count_as_missing() -> None:
    rng = np.random.default_rng(8)
    ref = {"x": rng.normal(size=5000)}
    values = rng.normal(size=5000)
    values[:250] = np.nan
    values[250:500] = np.inf
    values[500:510] = -np.inf
    column = by_name(report_of(ref, {"x": values}))["x"]
    assert column.quality.missing_share == pytest.approx(510 / 5000)
    assert np.isfinite(column.statistic)
    assert not column.drifted


def test_empty_current_is_reported_not_tested() -> None:
    ref, _ = drift_tables(2000, seed=9)
    empty = {name: values[:0] for name, values in ref.items()}
    report = report_of(ref, empty)
    assert report.current_rows == 0
    assert all(c.method == "none" and "no rows" in c.note for c in report.columns)
    assert report.drifted_share == 0.0
    assert not report.dataset_drift


def test_columns_present_on_one_side_only_are_reported() -> None:
    ref, cur = drift_tables(2000, seed=10)
    del cur["stable_0"]
    cur["brand_new"] = np.ones(2000)
    columns = by_name(report_of(ref, cur))
    assert columns["stable_0"].note == "not in the current data"
    assert columns["stable_0"].quality.missing_share == 1.0
    assert columns["brand_new"].note == "not in the reference data"
    assert not columns["stable_0"].drifted
    assert not columns["brand_new"].drifted


def test_type_errors_are_data_quality_not_a_crash() -> None:
    ref, cur = drift_tables(2000, seed=11)
    report = drift_report(ArrayColumns(ref), ArrayColumns(cur, {"stable_2": 37}))
    column = by_name(report)["stable_2"]
    assert column.quality.type_errors == 37
    assert "37 values of the wrong type" in column.quality.problems()
    assert not column.drifted


def test_kind_change_between_sides_is_a_type_problem() -> None:
    ref = {"x": np.arange(100, dtype=np.float64)}
    cur = {"x": np.array(["a", "b"] * 50, dtype=object)}
    column = by_name(report_of(ref, cur))["x"]
    assert column.method == "none"
    assert "type changed" in column.note
    assert column.quality.type_errors == 100


def test_prediction_column_is_reported_apart() -> None:
    ref, cur = drift_tables(2000, seed=12)
    ref["prediction"], cur["prediction"] = ref["stable_3"], cur["mean_shift"]
    report = report_of(ref, cur)
    assert report.prediction is not None
    assert report.prediction.drifted
    assert "prediction" not in by_name(report)
    assert report.drifted_count == 5


def test_report_round_trips_through_json_dict() -> None:
    ref, cur = drift_tables(1500, seed=13)
    ref["stable_0"] = np.full(1500, np.nan)
    report = report_of(ref, cur)
    data = report.to_dict()

    assert DriftReport.from_dict(json.loads(json.dumps(data, allow_nan=False))) == report
    histogram = data["columns"][0]["histogram"]
    assert len(histogram["bins"]) <= 20
    assert sum(histogram["reference"]) == pytest.approx(1.0)


def test_columns_argument_restricts_and_rejects_unknown_names() -> None:
    ref, cur = drift_tables(1500, seed=14)
    report = drift_report(ArrayColumns(ref), ArrayColumns(cur), columns=["skewed", "variance"])
    assert [c.name for c in report.columns] == ["variance", "skewed"]
    with pytest.raises(InvalidArgument, match="'nope'"):
        drift_report(ArrayColumns(ref), ArrayColumns(cur), columns=["nope"])


def test_skip_setting_leaves_a_column_out() -> None:
    ref, cur = drift_tables(1500, seed=15)
    report = report_of(ref, cur, columns={"mean_shift": {"skip": True}})
    assert "mean_shift" not in by_name(report)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"share": 0.5}, "unknown key(s) 'share'"),
        ({"share_threshold": 1.5}, "share_threshold must be between 0 and 1"),
        ({"share_threshold": "half"}, "must be a number"),
        ({"numeric_method": "chisquare"}, "numeric_method 'chisquare' is not one of"),
        ({"categorical_method": "ks"}, "categorical_method 'ks' is not one of"),
        ({"thresholds": {"kl": 0.1}}, "unknown key(s) 'kl'"),
        ({"columns": {"age": {"metod": "psi"}}}, "column 'age': unknown key(s) 'metod'"),
        ({"columns": {"age": {"method": "anova"}}}, "method of column 'age' 'anova'"),
        ({"columns": {"age": {"threshold": -1}}}, "threshold of column 'age' must be >= 0"),
        ({"columns": ["age"]}, "columns must map"),
        ({"small_sample_rows": -5}, "small_sample_rows must be a whole number"),
    ],
)
def test_settings_refuse_bad_values_naming_them(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        DriftSettings.from_dict(settings)
    assert message in caught.value.message


def test_settings_parse_and_round_trip() -> None:
    given = {
        "share_threshold": 0.3,
        "numeric_method": "psi",
        "categorical_method": "chisquare",
        "columns": {"age": {"method": "ks", "threshold": 0.01}},
    }
    settings = DriftSettings.from_dict(given)
    assert settings.share_threshold == 0.3
    assert settings.columns["age"].threshold == 0.01
    assert DriftSettings.from_dict(settings.to_dict()) == settings


def test_categorical_method_on_numeric_column_is_refused_naming_it() -> None:
    ref, cur = drift_tables(1500, seed=16)
    with pytest.raises(InvalidArgument, match="'chisquare' of column 'skewed'"):
        report_of(ref, cur, columns={"skewed": {"method": "chisquare"}})
