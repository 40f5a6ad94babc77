"""Reference ranges: computed from a version's example, overridden by config, checked per row."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from corral.errors import InvalidArgument
from corral.registry.entities import ColumnSpec
from corral.serving.deployment import parse_deployment
from corral.serving.errors import InvalidInput
from corral.serving.inputs import request_matrix
from corral.serving.ranges import (
    InputChecks,
    OutOfRangeRefused,
    RangeCheck,
    build_check,
    example_reference,
    parse_input_checks,
)

NUMERIC = [ColumnSpec("age", "int64", [-1]), ColumnSpec("income", "float64", [-1])]
MIXED = [ColumnSpec("age", "int64", [-1]), ColumnSpec("country", "string", [-1])]
VECTOR = [ColumnSpec("input", "float64", [-1, 3])]
EXAMPLE = [{"age": 20, "income": 1000.0}, {"age": 60, "income": 5000.0}]


def check_of(
    example: Any, columns: list[ColumnSpec], config: dict[str, Any] | None = None
) -> RangeCheck:
    reference = example_reference(example, columns) if example is not None else None
    return build_check(reference, parse_input_checks(config), columns, model="churn", version=3)


def run(check: RangeCheck, inputs: Any, columns: list[ColumnSpec]) -> Any:
    return check.check(request_matrix(inputs, columns, allow_missing=True))


def test_numeric_rows_outside_the_example_min_max_are_flagged_per_column() -> None:
    check = check_of(EXAMPLE, NUMERIC)
    found = run(
        check,
        [
            {"age": 20, "income": 5000.0},  # both bounds are inclusive
            {"age": 19, "income": 3000.0},
            {"age": 40, "income": 5000.5},
            {"age": 70, "income": -1.0},
        ],
        NUMERIC,
    )
    assert found.count == 3
    assert found.flagged_rows() == [1, 2, 3]
    assert found.columns == {"age": [1, 3], "income": [2, 3]}
    assert found.mask.tolist() == [False, True, True, True]
    assert found.to_dict() == {"rows": [1, 2, 3], "columns": {"age": [1, 3], "income": [2, 3]}}


def test_rows_inside_every_range_give_an_empty_report() -> None:
    found = run(check_of(EXAMPLE, NUMERIC), [{"age": 30, "income": 2000.0}], NUMERIC)
    assert found is not None
    assert (found.count, found.mask, found.columns, found.rows) == (0, None, {}, 1)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_out_of_range_even_on_an_open_side(value: float) -> None:
    check = check_of(EXAMPLE, NUMERIC, {"ranges": {"income": [0, None]}})
    matrix = np.array([[30.0, value], [30.0, 1e300]])
    found = check.check(matrix)
    assert found is not None
    assert found.columns == {"income": [0]}  # 1e300 is within [0, open)


def test_categorical_columns_allow_only_the_values_seen_and_never_null() -> None:
    example = {"age": [30, 40], "country": ["FR", "DE"]}
    check = check_of(example, MIXED)
    found = run(check, {"age": [35, 35, 35], "country": ["DE", "US", None]}, MIXED)
    assert found.columns == {"country": [1, 2]}


def test_margin_widens_by_a_share_of_the_span_and_around_a_constant() -> None:
    example = [{"age": 20, "income": 1000.0}, {"age": 60, "income": 1000.0}]
    check = check_of(example, NUMERIC, {"margin": 0.1})
    assert check.describe()["features"] == {"age": [16.0, 64.0], "income": [900.0, 1100.0]}
    found = run(
        check,
        [{"age": 16, "income": 1100.0}, {"age": 15.5, "income": 1100.5}],
        NUMERIC,
    )
    assert found.columns == {"age": [1], "income": [1]}


def test_explicit_ranges_override_the_example_add_columns_and_turn_checks_off() -> None:
    example = {"age": [30, 40], "country": ["FR", "DE"]}
    config = {"margin": 5.0, "ranges": {"age": [0, 120]}, "categories": {"country": None}}
    check = check_of(example, MIXED, config)
    assert check.describe()["features"] == {"age": [0.0, 120.0]}  # not widened
    assert "example of version 3 and deployment config" in check.summary
    found = run(check, {"age": [0, 121], "country": ["anything", "else"]}, MIXED)
    assert found.columns == {"age": [1]}
    added = check_of(
        None, MIXED, {"categories": {"country": ["FR"]}, "ranges": {"age": [18, None]}}
    )
    assert added.describe()["features"] == {"age": [18.0, None], "country": ["FR"]}
    assert run(added, {"age": [17, 99], "country": ["FR", "DE"]}, MIXED).columns == {
        "age": [0],
        "country": [1],
    }


def test_numeric_categories_and_vector_features_are_checked_one_by_one() -> None:
    example = [[0.0, 1.0, 10.0], [1.0, 2.0, 20.0]]
    config = {"ranges": {"input": [0, 5], "input[2]": [10, 20]}, "categories": {}}
    check = check_of(example, VECTOR, config)
    assert check.describe()["features"] == {
        "input[0]": [0.0, 5.0],
        "input[1]": [0.0, 5.0],
        "input[2]": [10.0, 20.0],
    }
    found = run(check, [[0.0, 5.0, 20.0], [6.0, 1.0, 9.0]], VECTOR)
    assert found.columns == {"input[0]": [1], "input[2]": [1]}
    codes = check_of(None, NUMERIC, {"categories": {"age": [1, 2, 3]}})
    assert run(codes, [[2, 0.0], [4, 0.0]], NUMERIC).columns == {"age": [1]}


def test_without_example_or_ranges_nothing_is_checked_and_the_summary_says_so() -> None:
    check = check_of(None, NUMERIC)
    assert not check.active
    assert check.check(np.array([[1e9, -1e9]])) is None
    assert check.summary.startswith("none: the version has no example")
    off = check_of(EXAMPLE, NUMERIC, {"out_of_range": "off"})
    assert off.check(np.array([[1e9, -1e9]])) is None
    assert off.summary.startswith("off")


def test_the_refusal_names_rows_columns_values_and_allowed_ranges() -> None:
    check = check_of(EXAMPLE, NUMERIC, {"out_of_range": "refuse"})
    assert check.refuses
    matrix = np.array([[30.0, 2000.0], [99.0, 2000.0], [30.0, -5.0]])
    found = check.check(matrix)
    assert found is not None
    error = check.refusal(matrix, found)
    assert isinstance(error, OutOfRangeRefused)
    assert isinstance(error, InvalidInput)  # a 422 invalid_input, like other input errors
    assert error.field == "age"
    assert "2 of 3 rows are outside the reference ranges of model 'churn' version 3" in str(error)
    assert "row 1: column 'age' is 99, allowed [20, 60]" in error.message
    assert "row 2: column 'income' is -5, allowed [1000, 5000]" in error.message


def test_a_text_matrix_and_values_that_are_not_numbers_are_checked_too() -> None:
    check = check_of(None, MIXED, {"ranges": {"age": [0, 10]}, "categories": {"country": ["FR"]}})
    matrix = np.array([[5, "FR"], ["x", "FR"], [None, "DE"]], dtype=object)
    found = check.check(matrix)
    assert found is not None
    assert found.columns == {"age": [1, 2], "country": [2]}


def test_a_big_batch_is_checked_in_one_vectorised_pass() -> None:
    rng = np.random.default_rng(0)
    example = np.vstack([np.full(20, -1.0), rng.uniform(-1, 1, size=(200, 20)), np.ones(20)])
    columns = [ColumnSpec(f"f{i}", "float64", [-1]) for i in range(20)]
    reference = example_reference(example.tolist(), columns)
    check = build_check(reference, InputChecks(), columns)
    batch = rng.uniform(-1, 1, size=(10_000, 20)) * 0.99
    batch[1234, 7] = 3.0
    found = check.check(batch)
    assert found is not None
    assert found.columns == {"f7": [1234]}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ([], "input_checks must be an object"),
        ({"mode": "flag"}, "input_checks has unknown key mode"),
        ({"out_of_range": "warn"}, 'must be "flag", "refuse" or "off", not "warn"'),
        ({"margin": -0.1}, "input_checks.margin must be a number of at least 0"),
        ({"margin": True}, "input_checks.margin must be a number"),
        ({"ranges": [1, 2]}, "input_checks.ranges must be an object keyed by column name"),
        ({"ranges": {"age": [1]}}, "input_checks.ranges.age must be [low, high]"),
        ({"ranges": {"age": [1, "2"]}}, "input_checks.ranges.age must be [low, high]"),
        ({"ranges": {"age": [5, 1]}}, "input_checks.ranges.age has low 5 above high 1"),
        ({"categories": {"c": []}}, "input_checks.categories.c must be a non-empty list"),
        ({"categories": {"c": [{"a": 1}]}}, "input_checks.categories.c must be a non-empty"),
        (
            {"ranges": {"c": [0, 1]}, "categories": {"c": ["x"]}},
            "gives column 'c' both a range and categories",
        ),
    ],
)
def test_a_bad_input_checks_section_is_refused_naming_the_field(section: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_deployment({"input_checks": section})
    assert message in caught.value.message


def test_the_deployment_carries_its_input_checks_with_flag_as_default() -> None:
    assert parse_deployment(None).input_checks == InputChecks(out_of_range="flag", margin=0.0)
    parsed = parse_deployment({"input_checks": {"out_of_range": "refuse", "margin": 0.5}})
    assert (parsed.input_checks.out_of_range, parsed.input_checks.margin) == ("refuse", 0.5)


def test_config_ranges_must_name_signature_columns_and_fit_their_type() -> None:
    with pytest.raises(InvalidArgument, match=r"names column 'agee'.*its columns: age, country"):
        check_of(None, MIXED, {"ranges": {"agee": [0, 1]}})
    with pytest.raises(InvalidArgument, match="column 'country' holds text"):
        check_of(None, MIXED, {"ranges": {"country": [0, 1]}})


def test_an_example_that_does_not_fit_the_signature_is_an_error() -> None:
    with pytest.raises(InvalidInput):
        example_reference([{"other": 1}], NUMERIC)
