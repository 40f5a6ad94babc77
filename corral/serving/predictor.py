"""What a loaded version offers (``Predictor``) and how requests become model inputs.

Requests arrive as a 2-D array, columns (an object of lists) or records (a list of
objects); ``to_matrix`` lays them out as the 2-D array a model expects, in the column
order of the version's signature, so a consumer never depends on key order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

import numpy as np
import numpy.typing as npt

from corral.errors import InvalidArgument
from corral.registry.entities import ColumnSpec, Deprecation, Signature

if TYPE_CHECKING:
    from corral.serving.ranges import OutOfRange

Array: TypeAlias = npt.NDArray[Any]
Inputs: TypeAlias = Array | Mapping[str, Any] | Sequence[Any]
Outputs: TypeAlias = Array | dict[str, Array]


@dataclass(frozen=True, slots=True)
class Prediction:
    """A model's answer and who gave it."""

    model: str
    version: int
    alias: str | None
    consumer: str | None
    outputs: Outputs
    rows: int
    canary: bool = False
    deprecation: Deprecation | None = None
    request_id: str = ""
    # The reference-range check of the inputs (None when the route checks nothing).
    out_of_range: OutOfRange | None = None


@runtime_checkable
class Predictor(Protocol):
    """A loaded version, ready to predict."""

    @property
    def input_names(self) -> list[str]:
        """The input columns in the order the model expects (empty when unknown)."""
        ...

    @property
    def supports_proba(self) -> bool:
        """Whether ``predict_proba`` is available."""
        ...

    def predict(self, inputs: Inputs) -> Outputs:
        """Predictions for a 2-D array, columns or records."""
        ...

    def predict_proba(self, inputs: Inputs) -> Outputs:
        """Class probabilities; ``InvalidArgument`` when the model has none."""
        ...


def signature_columns(signature: Signature | None) -> list[ColumnSpec]:
    """The input columns a signature declares (none without a signature)."""
    return list(signature.inputs) if signature is not None else []


def named_columns(names: Sequence[str], dtype: str = "float64") -> list[ColumnSpec]:
    """One scalar column per name (for models that carry their own feature names)."""
    return [ColumnSpec(name=str(n), dtype=dtype, shape=[-1]) for n in names]


def _width(column: ColumnSpec) -> int | None:
    """Values per row: 1 for a scalar column, the inner size for a vector, None if unknown."""
    if len(column.shape) <= 1:
        return 1
    if len(column.shape) == 2 and column.shape[1] > 0:
        return column.shape[1]
    return None


def _expected_width(columns: Sequence[ColumnSpec]) -> int | None:
    widths = [_width(c) for c in columns]
    if not widths or any(w is None for w in widths):
        return None
    return sum(w for w in widths if w is not None)


def _cast(array: Array, dtype: npt.DTypeLike | None) -> Array:
    if dtype is None:
        return array
    try:
        return array.astype(dtype, copy=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"inputs cannot be converted to {np.dtype(dtype)}: {exc}") from exc


def _asarray(value: Any, what: str) -> Array:
    try:
        return np.asarray(value)
    except ValueError as exc:  # ragged rows
        raise InvalidArgument(f"{what} is not rectangular: {exc}") from exc


def _block(name: str, value: Any, width: int | None) -> Array:
    """One column's values as a (rows, width) block."""
    array = _asarray(value, f"column '{name}'")
    if array.ndim == 0:
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        # A vector column given for a single row, or a scalar column given for many rows.
        array = array.reshape(1, -1) if width not in (None, 1) else array.reshape(-1, 1)
    if array.ndim != 2:
        raise InvalidArgument(f"column '{name}' has {array.ndim} dimensions; expected 1 or 2")
    if width is not None and array.shape[1] != width:
        raise InvalidArgument(
            f"column '{name}' has {array.shape[1]} values per row; expected {width}"
        )
    return array


def _records_to_columns(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    names: list[str] = []
    for row in records:
        names.extend(k for k in row if k not in names)
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for index, row in enumerate(records):
        for name in names:
            if name not in row:
                raise InvalidArgument(f"record {index} has no value for column '{name}'")
            columns[name].append(row[name])
    return columns


def _from_columns(
    values: Mapping[str, Any], columns: Sequence[ColumnSpec], dtype: npt.DTypeLike | None
) -> Array:
    if not columns:
        raise InvalidArgument(
            "this version declares no input columns: send a 2-D array, or register it "
            "with an example so Corral knows the column order"
        )
    expected = [c.name for c in columns]
    unknown = sorted(set(values) - set(expected))
    if unknown:
        raise InvalidArgument(
            f"unknown input columns: {', '.join(unknown)}; expected: {', '.join(expected)}"
        )
    missing = [name for name in expected if name not in values]
    if missing:
        raise InvalidArgument(
            f"missing input columns: {', '.join(missing)}; expected: {', '.join(expected)}"
        )
    blocks = [_block(c.name, values[c.name], _width(c)) for c in columns]
    rows = {b.shape[0] for b in blocks}
    if len(rows) > 1:
        raise InvalidArgument(f"input columns have different lengths: {sorted(rows)}")
    if dtype is None and any(b.dtype.kind not in "biuf" for b in blocks):
        # Mixed text and numbers stay as Python objects instead of all becoming strings.
        blocks = [b.astype(object) for b in blocks]
    return _cast(np.hstack(blocks), dtype)


def to_matrix(
    inputs: Inputs, columns: Sequence[ColumnSpec] = (), *, dtype: npt.DTypeLike | None = None
) -> Array:
    """The 2-D array (rows × features) for a 2-D array, columns or records.

    Columns and records are laid out in the order of ``columns`` (the signature's);
    a 2-D array must already be in that order and have as many features.
    """
    if isinstance(inputs, Mapping):
        return _from_columns(inputs, columns, dtype)
    if isinstance(inputs, str | bytes):
        raise InvalidArgument("inputs must be a 2-D array, columns or records, not text")
    if not isinstance(inputs, np.ndarray):
        if not isinstance(inputs, Sequence):
            raise InvalidArgument(
                f"inputs must be a 2-D array, columns or records, not {type(inputs).__name__}"
            )
        if inputs and all(isinstance(row, Mapping) for row in inputs):
            return _from_columns(_records_to_columns(inputs), columns, dtype)
        if any(isinstance(row, Mapping) for row in inputs):
            raise InvalidArgument("inputs mix records with other rows")
    array = _asarray(inputs, "the input array")
    if array.ndim != 2:
        raise InvalidArgument(
            f"inputs must be a 2-D array (rows × features); got shape {list(array.shape)}"
        )
    width = _expected_width(columns)
    if width is not None and array.shape[1] != width:
        raise InvalidArgument(f"inputs have {array.shape[1]} features per row; expected {width}")
    return _cast(array, dtype)


class ArrayPredictor:
    """A predictor over functions of the 2-D input array (most tabular models)."""

    def __init__(
        self,
        predict: Callable[[Array], Outputs],
        *,
        columns: Sequence[ColumnSpec] = (),
        proba: Callable[[Array], Outputs] | None = None,
        dtype: npt.DTypeLike | None = None,
    ) -> None:
        self._predict = predict
        self._proba = proba
        self.columns = list(columns)
        self.dtype = dtype

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def supports_proba(self) -> bool:
        return self._proba is not None

    def predict(self, inputs: Inputs) -> Outputs:
        return self._predict(to_matrix(inputs, self.columns, dtype=self.dtype))

    def predict_proba(self, inputs: Inputs) -> Outputs:
        if self._proba is None:
            raise InvalidArgument("this model does not predict probabilities")
        return self._proba(to_matrix(inputs, self.columns, dtype=self.dtype))
