"""Checking request inputs against a version's signature, and OIP V2 tensors in and out.

Everything a caller can get wrong is caught here and named: the column, the row, the
tensor, what was expected and what arrived (``InvalidInput``, a 422 over HTTP). Nothing in
a request body reaches a model unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from corral.registry.entities import ColumnSpec
from corral.serving.errors import InvalidInput, TooLarge
from corral.serving.predictor import Array, Outputs, to_matrix

NUMERIC_KINDS = "biuf"
_NUMERIC_DTYPES = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "null",
}  # fmt: skip

# The Open Inference Protocol's tensor datatypes and their NumPy equivalents.
OIP_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}
_MAX_DIMS = 32
_OIP_BY_KIND = {
    np.dtype(np.bool_): "BOOL",
    **{np.dtype(v): k for k, v in OIP_DTYPES.items() if v is not object and k != "BOOL"},
}


def is_numeric(column: ColumnSpec) -> bool:
    return column.dtype in _NUMERIC_DTYPES


def _expected(columns: Sequence[ColumnSpec]) -> str:
    names = [c.name for c in columns]
    shown = ", ".join(names[:8]) + (f", … ({len(names)} in all)" if len(names) > 8 else "")
    return shown


def _width(column: ColumnSpec) -> int | None:
    if len(column.shape) <= 1:
        return 1
    return column.shape[1] if len(column.shape) == 2 and column.shape[1] > 0 else None


def _column_at(columns: Sequence[ColumnSpec], index: int) -> str:
    """The signature column that feature ``index`` of a 2-D row belongs to."""
    position = 0
    for column in columns:
        width = _width(column)
        if width is None:
            return column.name
        if index < position + width:
            return column.name if width == 1 else f"{column.name}[{index - position}]"
        position += width
    return f"feature {index}"


def _bad_cell(rows: Sequence[Any], allow_missing: bool) -> tuple[int, int, Any] | None:
    """The first (row, feature, value) that is not a number (None counts unless allowed)."""
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is None and allow_missing:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                return r, c, value
    return None


def _describe(value: Any) -> str:
    if value is None:
        return "a missing value (null)"
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'…' if len(text) > 40 else ''}"


def _check_finite(matrix: Array, columns: Sequence[ColumnSpec], allow_missing: bool) -> None:
    if allow_missing or matrix.dtype.kind != "f" or matrix.size == 0:
        return
    finite = np.isfinite(matrix)
    if finite.all():
        return
    row, feature = (int(i) for i in np.argwhere(~finite)[0])
    raise InvalidInput(
        f"row {row}, column '{_column_at(columns, feature)}' is missing or not finite; this "
        "deployment rejects missing values (set inputs.allow_missing in its config to let "
        "them through as NaN)",
        field=_column_at(columns, feature),
    )


def _array_matrix(
    rows: Sequence[Any], columns: Sequence[ColumnSpec], allow_missing: bool, finite: bool
) -> Array:
    try:
        matrix: Array | None = np.asarray(rows)
    except (ValueError, TypeError):
        matrix = None
    # Without a signature, numbers are still checked as numbers and anything else passes.
    numeric = (
        all(is_numeric(c) for c in columns)
        if columns
        else matrix is not None and matrix.dtype.kind in NUMERIC_KINDS
    )
    if matrix is None or (numeric and matrix.dtype.kind not in NUMERIC_KINDS):
        lengths = {len(r) if isinstance(r, list) else -1 for r in rows}
        if len(lengths) > 1 or -1 in lengths:
            raise InvalidInput(
                "inputs must be a 2-D array whose rows are lists of equal length "
                f"(got row lengths {sorted(lengths)[:5]})"
            ) from None
        bad = _bad_cell(rows, allow_missing)
        if bad is not None:
            row, feature, value = bad
            field = _column_at(columns, feature)
            raise InvalidInput(
                f"row {row}, column '{field}' expects a number; got {_describe(value)}",
                field=field,
            )
        matrix = np.asarray(
            [[math.nan if v is None else v for v in r] for r in rows], dtype=np.float64
        )
        finite = False  # nulls became NaN
    elif numeric and matrix.dtype != np.float64:
        matrix = matrix.astype(np.float64)
    if matrix.ndim != 2:
        raise InvalidInput(
            f"inputs must be a 2-D array (rows × features); got shape {list(matrix.shape)}"
        )
    expected = _expected_width(columns)
    if expected is not None and matrix.shape[1] != expected:
        raise InvalidInput(
            f"inputs have {matrix.shape[1]} values per row; expected {expected} "
            f"({_expected(columns)})"
        )
    if numeric and not finite:
        _check_finite(matrix, columns, allow_missing)
    return matrix


def _expected_width(columns: Sequence[ColumnSpec]) -> int | None:
    widths = [_width(c) for c in columns]
    if not widths or any(w is None for w in widths):
        return None
    return sum(w for w in widths if w is not None)


def _records_columns(records: Sequence[Any]) -> dict[str, list[Any]]:
    names: dict[str, None] = {}
    for index, row in enumerate(records):
        if not isinstance(row, Mapping):
            raise InvalidInput(f"record {index} is not an object; send every row as an object")
        names.update(dict.fromkeys(row))
    out: dict[str, list[Any]] = {name: [] for name in names}
    for index, row in enumerate(records):
        for name in names:
            if name not in row:
                raise InvalidInput(f"record {index} has no value for column '{name}'", field=name)
            out[name].append(row[name])
    return out


def _check_column(column: ColumnSpec, values: Any, allow_missing: bool) -> None:
    """A numeric column holds numbers (or nulls, when allowed), a text column text."""
    flat = values if isinstance(values, list) else [values]
    for row, value in enumerate(flat):
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is None:
                if allow_missing:
                    continue
                raise InvalidInput(
                    f"row {row}, column '{column.name}' is missing; this deployment rejects "
                    "missing values (set inputs.allow_missing in its config to allow them)",
                    field=column.name,
                )
            if is_numeric(column):
                ok = isinstance(item, int | float) and (
                    column.dtype == "bool" or not isinstance(item, bool)
                )
            elif column.dtype == "string":
                ok = isinstance(item, str)
            else:
                ok = isinstance(item, str | int | float)
            if not ok:
                raise InvalidInput(
                    f"row {row}, column '{column.name}' expects {column.dtype}; got "
                    f"{_describe(item)}",
                    field=column.name,
                )


def _columns_matrix(
    values: Mapping[str, Any],
    columns: Sequence[ColumnSpec],
    allow_missing: bool,
    *,
    typed: bool = False,
) -> Array:
    """Columns (JSON lists, or NumPy arrays when ``typed``) as the signature's matrix."""
    if not columns:
        raise InvalidInput(
            "this version declares no input columns: send a 2-D array, or register it with an "
            "example so Corral knows the column names"
        )
    expected = {c.name for c in columns}
    missing = [c.name for c in columns if c.name not in values]
    if missing:
        raise InvalidInput(
            f"missing input column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing[:8])}; expected {_expected(columns)}",
            field=missing[0],
        )
    unknown = sorted(set(values) - expected)
    if unknown:
        raise InvalidInput(
            f"unknown input column{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown[:8])}; expected {_expected(columns)}",
            field=unknown[0],
        )
    for column in columns:
        if not typed:
            _check_column(column, values[column.name], allow_missing)
        elif is_numeric(column) and np.asarray(values[column.name]).dtype.kind not in NUMERIC_KINDS:
            raise InvalidInput(
                f"input '{column.name}' holds text; column '{column.name}' expects {column.dtype}",
                field=column.name,
            )
    numeric = all(is_numeric(c) for c in columns)
    cleaned = {
        c.name: _nulls_to_nan(values[c.name]) if numeric and allow_missing else values[c.name]
        for c in columns
    }
    try:
        return to_matrix(cleaned, columns, dtype=np.float64 if numeric else None)
    except InvalidInput:
        raise
    except Exception as exc:  # to_matrix names the column and the problem
        raise InvalidInput(str(getattr(exc, "message", exc))) from exc


def _nulls_to_nan(values: Any) -> Any:
    if isinstance(values, list):
        return [_nulls_to_nan(v) for v in values]
    return math.nan if values is None else values


def plain_inputs(inputs: Any) -> Any:
    """SDK inputs as plain JSON values: NumPy arrays become lists, DataFrames columns."""
    if hasattr(inputs, "to_dict") and hasattr(inputs, "columns"):  # a pandas DataFrame
        return {str(k): _plain_list(v) for k, v in inputs.to_dict(orient="list").items()}
    if isinstance(inputs, np.ndarray):
        return inputs.tolist()
    if isinstance(inputs, Mapping):
        return {str(k): _plain_list(v) for k, v in inputs.items()}
    return inputs


def _plain_list(values: Any) -> Any:
    if isinstance(values, np.ndarray):
        return values.tolist()
    if isinstance(values, list):
        return [v.item() if isinstance(v, np.generic) else v for v in values]
    return values


def request_matrix(
    inputs: Any,
    columns: Sequence[ColumnSpec],
    *,
    allow_missing: bool = False,
    from_json: bool = False,
) -> Array:
    """The checked 2-D array for plain JSON inputs: a 2-D array, columns or records.

    ``from_json``: the inputs were parsed from JSON text, whose numbers are all finite
    (the parser refuses NaN, infinities and overflows), so only nulls need looking for.
    """
    if isinstance(inputs, Mapping):
        matrix = _columns_matrix(inputs, columns, allow_missing)
    elif isinstance(inputs, list) and inputs:
        if isinstance(inputs[0], Mapping):
            matrix = _columns_matrix(_records_columns(inputs), columns, allow_missing)
        else:
            matrix = _array_matrix(inputs, columns, allow_missing, from_json)
    elif isinstance(inputs, list):
        raise InvalidInput("inputs hold no rows")
    else:
        raise InvalidInput(
            "inputs must be records (a list of objects), columns (an object of lists) or a "
            f"2-D array; got {_describe(inputs)}"
        )
    if matrix.shape[0] == 0:
        raise InvalidInput("inputs hold no rows")
    return matrix


def check_rows(matrix: Array, max_rows: int) -> None:
    if matrix.shape[0] > max_rows:
        raise TooLarge(
            f"the request has {matrix.shape[0]} rows; this deployment accepts at most "
            f"{max_rows} per request (split it, or raise limits.max_rows in its config)"
        )


# -- Open Inference Protocol V2 ----------------------------------------------------------


def _tensor_values(data: list[Any], datatype: str) -> Array | None:
    """``data`` as an array of ``datatype``, or None if that would change or invent values.

    Text is not a number (NumPy would parse "1.5" and take "no" as True), and a number the
    datatype cannot hold (300 as UINT8, 1.5 as INT64, 1e300 as FP32) is refused, not wrapped,
    truncated or made infinite.
    """
    dtype = OIP_DTYPES[datatype]
    try:
        if dtype is object:
            return np.asarray(data, dtype=object)
        parsed = np.asarray(data)
        if parsed.dtype.kind in "US":
            return None
        if parsed.dtype.kind not in NUMERIC_KINDS:  # nulls (missing values), huge integers
            return np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        return None
    if parsed.dtype == dtype:
        return parsed
    with np.errstate(over="ignore", invalid="ignore"):
        values = parsed.astype(dtype)
    if values.dtype.kind == "f":
        changed = bool((np.isinf(values) & np.isfinite(parsed)).any())
    else:
        changed = not np.array_equal(values, parsed)
    return None if changed else values


def _tensor(index: int, spec: Any) -> tuple[str, Array]:
    where = f"inputs[{index}]"
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"{where} must be an object with name, shape, datatype and data")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where} needs a 'name' (a non-empty string)", field=f"{where}.name")
    where = f"input '{name}'"
    shape = spec.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise InvalidInput(
            f"{where} needs a 'shape': a list of non-negative integers", field=f"{name}.shape"
        )
    if len(shape) > _MAX_DIMS:  # NumPy stops at 64; columns and matrices need 1 or 2
        raise InvalidInput(
            f"{where} has {len(shape)} dimensions; the most a tensor may have is {_MAX_DIMS}",
            field=f"{name}.shape",
        )
    datatype = spec.get("datatype")
    if not isinstance(datatype, str) or datatype not in OIP_DTYPES:
        raise InvalidInput(
            f"{where} has datatype {datatype!r}; expected one of {', '.join(OIP_DTYPES)}",
            field=f"{name}.datatype",
        )
    data = spec.get("data")
    parameters = spec.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise InvalidInput(f"{where}: 'parameters' must be an object", field=f"{name}.parameters")
    if data is None and parameters and "binary_data_size" in parameters:
        raise InvalidInput(
            f"{where} is sent as binary data, which Corral does not support: send its values "
            "as JSON in 'data' (tritonclient and kserve: set_data_from_numpy(array, "
            "binary_data=False))",
            field=f"{name}.data",
        )
    if not isinstance(data, list):
        raise InvalidInput(f"{where} needs 'data': a list of values", field=f"{name}.data")
    dtype = OIP_DTYPES[datatype]
    values = _tensor_values(data, datatype)
    if values is None:
        raise InvalidInput(
            f"{where} is declared {datatype} but its data holds other values (text, objects, "
            f"ragged lists or numbers {datatype} cannot hold)",
            field=f"{name}.data",
        )
    if dtype is object:
        values = values.ravel()
        if not all(isinstance(v, str) for v in values):
            raise InvalidInput(f"{where} is BYTES: its data must be strings", field=f"{name}.data")
    size = math.prod(shape)
    if values.size != size:
        raise InvalidInput(
            f"{where} has shape {shape}, which needs {size} values; its data holds {values.size}",
            field=f"{name}.data",
        )
    try:
        return name, values.reshape(shape)
    except ValueError:  # e.g. [0, 2**62]: no values, yet a size NumPy cannot describe
        raise InvalidInput(
            f"{where} has shape {shape}, which NumPy cannot hold", field=f"{name}.shape"
        ) from None


def oip_matrix(
    tensors: Any, columns: Sequence[ColumnSpec], *, allow_missing: bool = False
) -> Array:
    """The checked 2-D array for an OIP request's ``inputs``.

    One 2-D tensor is the rows × features matrix; otherwise each tensor is one column,
    named as in the signature.
    """
    if not isinstance(tensors, list) or not tensors:
        raise InvalidInput("'inputs' must be a non-empty list of tensors", field="inputs")
    named = [_tensor(i, t) for i, t in enumerate(tensors)]
    if len({n for n, _ in named}) != len(named):
        raise InvalidInput("input tensor names must be unique", field="inputs")
    if len(named) == 1 and named[0][1].ndim == 2:
        matrix = named[0][1]
        expected = _expected_width(columns)
        if expected is not None and matrix.shape[1] != expected:
            raise InvalidInput(
                f"input '{named[0][0]}' has {matrix.shape[1]} features per row; expected "
                f"{expected} ({_expected(columns)})",
                field=named[0][0],
            )
        if matrix.dtype == object and all(is_numeric(c) for c in columns):
            raise InvalidInput(
                f"input '{named[0][0]}' is BYTES; this model expects numbers", field=named[0][0]
            )
    else:
        if len(named) == 1 and len(columns) == 1 and named[0][1].ndim == 1:
            named = [(columns[0].name, named[0][1])]
        for name, values in named:
            if values.ndim not in (1, 2):
                raise InvalidInput(
                    f"input '{name}' has {values.ndim} dimensions; a column tensor has 1 or 2",
                    field=name,
                )
        matrix = _columns_matrix(dict(named), columns, allow_missing=True, typed=True)
    if matrix.shape[0] == 0:
        raise InvalidInput("inputs hold no rows")
    if matrix.dtype.kind in NUMERIC_KINDS and matrix.dtype != np.float64 and columns:
        matrix = matrix.astype(np.float64)
    _check_finite(matrix, columns, allow_missing)
    return matrix


def oip_outputs(outputs: Outputs, requested: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Model outputs as OIP tensors (numbers stay NumPy arrays for a fast encoder)."""
    arrays = outputs if isinstance(outputs, dict) else {"predict": outputs}
    tensors: list[dict[str, Any]] = []
    for name, value in arrays.items():
        if requested and name not in requested:
            continue
        array = np.asarray(value)
        datatype = _OIP_BY_KIND.get(array.dtype)
        if datatype is None:
            tensors.append(
                {
                    "name": name,
                    "datatype": "BYTES",
                    "shape": list(array.shape),
                    "data": [str(v) for v in array.ravel().tolist()],
                }
            )
        else:
            tensors.append(
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": list(array.shape),
                    "data": np.ascontiguousarray(array).ravel(),
                }
            )
    return tensors


def plain_outputs(outputs: Outputs) -> Any:
    """Model outputs for the plain JSON response (NumPy arrays, encoded by orjson)."""
    if isinstance(outputs, dict):
        return {k: _jsonable(np.asarray(v)) for k, v in outputs.items()}
    return _jsonable(np.asarray(outputs))


def _jsonable(array: Array) -> Any:
    if array.dtype.kind in NUMERIC_KINDS and array.dtype != np.float16:
        return np.ascontiguousarray(array)
    return array.tolist()
