"""Inferring an input signature (column names, dtypes, shapes) from an example."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from corral.errors import InvalidArgument
from corral.registry.entities import ColumnSpec, Signature

_MAX_EXAMPLE_BYTES = 16 * 1024 * 1024
# The file a version's example rows are stored in (registration writes it; serving pages
# and drift references read it).
EXAMPLE_FILE = "input_example.json"


def _scalar_dtype(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    # numpy scalars and arrays carry their own dtype
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        return str(dtype)
    raise InvalidArgument(f"example value {value!r} has an unsupported type {type(value).__name__}")


def _merge(a: str, b: str) -> str:
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    if {a, b} <= {"int64", "float64"}:
        return "float64"
    return "object"


def _column(name: str, values: Sequence[Any]) -> ColumnSpec:
    dtype = "null"
    inner: list[int] | None = None
    for v in values:
        if isinstance(v, list | tuple):
            inner = [len(v)]
            for item in v:
                dtype = _merge(dtype, _scalar_dtype(item))
        else:
            dtype = _merge(dtype, _scalar_dtype(v))
    return ColumnSpec(name=name, dtype=dtype, shape=[-1, *(inner or [])])


def infer_signature(example: Any) -> Signature:
    """The input signature of an example.

    Accepts records (a list of objects), columns (an object of lists), a 2-D array
    (lists, numpy or anything with ``tolist``) or a pandas DataFrame.
    """
    if hasattr(example, "to_dict") and hasattr(example, "columns"):  # a DataFrame
        example = example.to_dict(orient="list")
    elif hasattr(example, "tolist") and not isinstance(example, list):
        example = example.tolist()
    if isinstance(example, Mapping):
        if not example:
            raise InvalidArgument("example has no columns")
        cols = []
        for key, values in example.items():
            if not isinstance(values, list | tuple):
                values = [values]
            cols.append(_column(str(key), list(values)))
        return Signature(inputs=cols)
    if isinstance(example, list | tuple) and example:
        first = example[0]
        if isinstance(first, Mapping):
            names: list[str] = []
            for row in example:
                if not isinstance(row, Mapping):
                    raise InvalidArgument("example mixes records with other rows")
                names.extend(k for k in row if k not in names)
            return Signature(
                inputs=[_column(str(n), [row.get(n) for row in example]) for n in names]
            )
        if isinstance(first, list | tuple):
            width = len(first)
            if any(not isinstance(r, list | tuple) or len(r) != width for r in example):
                raise InvalidArgument("example rows of a 2-D array must all have the same length")
            dtype = "null"
            for row in example:
                for item in row:
                    dtype = _merge(dtype, _scalar_dtype(item))
            return Signature(inputs=[ColumnSpec(name="input", dtype=dtype, shape=[-1, width])])
        return Signature(inputs=[_column("input", list(example))])
    raise InvalidArgument(
        "example must be records (a list of objects), columns (an object of lists) "
        "or a 2-D array, and not empty"
    )


def load_example(path: Path) -> Any:
    """Read an example from a JSON or CSV file (numbers in CSV become numbers)."""
    if not path.is_file():
        raise InvalidArgument(f"example file '{path}' does not exist")
    if path.stat().st_size > _MAX_EXAMPLE_BYTES:
        raise InvalidArgument(f"example file '{path}' is larger than 16 MiB; give a few rows")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        return [{k: _number(v) for k, v in row.items()} for row in rows]
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            f"example file '{path}' is not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from exc


def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
