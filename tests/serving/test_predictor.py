import numpy as np
import pytest

from corral.errors import InvalidArgument
from corral.registry.entities import ColumnSpec
from corral.serving import ArrayPredictor, to_matrix

COLUMNS = [ColumnSpec("a", "float64"), ColumnSpec("b", "float64")]


def test_columns_and_records_follow_the_signature_order_not_the_key_order() -> None:
    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    columns = to_matrix({"b": [2.0, 4.0], "a": [1.0, 3.0]}, COLUMNS)
    rows = to_matrix([{"b": 2.0, "a": 1.0}, {"a": 3.0, "b": 4.0}], COLUMNS)
    np.testing.assert_array_equal(columns, expected)
    np.testing.assert_array_equal(rows, expected)


def test_a_2d_array_passes_through_with_the_requested_dtype() -> None:
    matrix = to_matrix([[1, 2], [3, 4]], COLUMNS, dtype=np.float32)
    assert matrix.dtype == np.float32
    assert matrix.shape == (2, 2)


def test_vector_columns_are_laid_side_by_side() -> None:
    columns = [ColumnSpec("input", "float64", [-1, 3]), ColumnSpec("extra", "float64")]
    matrix = to_matrix({"input": [[1, 2, 3], [4, 5, 6]], "extra": [7, 8]}, columns)
    np.testing.assert_array_equal(matrix, [[1, 2, 3, 7], [4, 5, 6, 8]])


def test_mixed_text_and_numbers_become_objects_not_strings() -> None:
    columns = [ColumnSpec("city", "string"), ColumnSpec("size", "int64")]
    matrix = to_matrix([{"city": "Oslo", "size": 3}], columns)
    assert matrix.dtype == object
    assert matrix[0, 1] == 3


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"a": [1.0]}, "missing input columns: b"),
        ({"a": [1.0], "b": [2.0], "c": [3.0]}, "unknown input columns: c"),
        ({"a": [1.0, 2.0], "b": [2.0]}, "different lengths"),
        ([[1.0, 2.0, 3.0]], "3 features per row; expected 2"),
        ([1.0, 2.0], "must be a 2-D array"),
        ([[1.0], [1.0, 2.0]], "not rectangular"),
        ([{"a": 1.0, "b": 2.0}, {"a": 1.0}], "record 1 has no value for column 'b'"),
        ([{"a": 1.0, "b": 2.0}, [1.0, 2.0]], "mix records"),
        ("a,b", "not text"),
        ([["x", "y"]], "cannot be converted to float64"),
    ],
)
def test_bad_inputs_are_refused_naming_the_problem(inputs: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        to_matrix(inputs, COLUMNS, dtype=np.float64)  # type: ignore[arg-type]


def test_columns_without_a_signature_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="declares no input columns"):
        to_matrix({"a": [1.0]})


def test_array_predictor_without_probabilities_says_so() -> None:
    predictor = ArrayPredictor(lambda x: x.sum(axis=1), columns=COLUMNS)
    assert predictor.input_names == ["a", "b"]
    assert not predictor.supports_proba
    np.testing.assert_array_equal(predictor.predict({"a": [1], "b": [2]}), [3])
    with pytest.raises(InvalidArgument, match="does not predict probabilities"):
        predictor.predict_proba([[1, 2]])
