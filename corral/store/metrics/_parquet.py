"""Rows (dicts) to Arrow tables with the log's fixed column types, and whole-file writes."""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)

PREDICTION_COLUMNS: dict[str, pa.DataType] = {
    "request_id": pa.string(),
    "row": pa.int32(),
    "ts": _TIMESTAMP,
    "model": pa.string(),
    "version": pa.int32(),
    "alias": pa.string(),
    "consumer": pa.string(),
    "latency_ms": pa.float64(),
    "error": pa.string(),
    "prediction_label": pa.string(),
    "prediction_value": pa.float64(),
    "score": pa.float64(),
    "proba": pa.list_(pa.float64()),
    "out_of_range": pa.bool_(),
}

FEEDBACK_COLUMNS: dict[str, pa.DataType] = {
    "request_id": pa.string(),
    "row": pa.int32(),
    "label_text": pa.string(),
    "label_value": pa.float64(),
    "received_at": _TIMESTAMP,
}


def to_datetime(value: Any) -> datetime:
    """A timestamp given as an aware/naive datetime (naive = UTC), µs since epoch or ISO text."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, np.datetime64):
        return datetime.fromtimestamp(
            int(value.astype("datetime64[us]").astype(np.int64)) / 1e6, UTC
        )
    if isinstance(value, int | float | np.integer | np.floating):
        return datetime.fromtimestamp(int(value) / 1e6, UTC)
    if isinstance(value, str):
        return to_datetime(datetime.fromisoformat(value))
    raise TypeError(f"{value!r} is not a timestamp")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _input_type(values: list[Any]) -> pa.DataType:
    """float64 for numbers, list<float64> for vectors, string for anything else."""
    present = [value for value in values if value is not None]
    if not present:
        return pa.float64()
    if all(_is_number(value) for value in present):
        return pa.float64()
    if all(isinstance(value, list | tuple | np.ndarray) for value in present):
        return pa.list_(pa.float64())
    return pa.string()


def _coerce(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return None
    if kind == pa.string():
        if isinstance(value, bool | np.bool_):
            return "true" if value else "false"
        return value if isinstance(value, str) else str(value)
    if kind == pa.float64():
        number = float(value)
        return None if np.isnan(number) else number
    if kind == pa.int32():
        return int(value)
    if pa.types.is_list(kind):
        return [float(item) for item in value]
    return value


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    """Values of the right Python types convert in C; the others are coerced one by one."""
    if kind == _TIMESTAMP:
        if not all(value is None or isinstance(value, datetime) for value in values):
            values = [None if value is None else to_datetime(value) for value in values]
        # Arrow stores aware datetimes as UTC and takes naive ones as they are (UTC for us),
        # much faster into a zone-less type, which is then labelled UTC.
        return pa.array(values, type=pa.timestamp("us")).cast(kind)
    try:
        return pa.array(values, type=kind)
    except _CONVERSION_ERRORS:
        return pa.array([_coerce(value, kind) for value in values], type=kind)


def to_table(rows: Sequence[Mapping[str, Any]], fixed: Mapping[str, pa.DataType]) -> pa.Table:
    """An Arrow table of ``rows``: the fixed columns first, then the others in first-seen order."""
    kinds = dict(fixed)
    for name in dict.fromkeys(chain.from_iterable(rows)):
        if name not in kinds:
            kinds[name] = _input_type([row.get(name) for row in rows])
    schema = pa.schema([pa.field(name, kind) for name, kind in kinds.items()])
    # Fast path: Arrow converts the rows in C when every value already has the column's type.
    # Timestamps go apart: a zone-less array of aware datetimes is much faster to build.
    plain = pa.schema([field for field in schema if field.type != _TIMESTAMP])
    try:
        table = pa.Table.from_pylist(list(rows), schema=plain)
        for index, field in enumerate(schema):
            if field.type == _TIMESTAMP:
                table = table.add_column(
                    index, field, _array([row.get(field.name) for row in rows], field.type)
                )
        return table
    except _CONVERSION_ERRORS:
        columns = [_array([row.get(name) for row in rows], kind) for name, kind in kinds.items()]
        return pa.Table.from_arrays(columns, schema=schema)


def by_date(
    rows: Sequence[Mapping[str, Any]], time_column: str
) -> dict[date, list[Mapping[str, Any]]]:
    """Rows grouped by the UTC day of ``time_column``."""
    groups: dict[date, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[to_datetime(row[time_column]).astimezone(UTC).date()].append(row)
    return dict(groups)


def write_table(fs: AbstractFileSystem, folder: str, table: pa.Table, *, local: bool) -> str:
    """Write ``table`` as one new Parquet file in ``folder``; readers never see half of it."""
    now = datetime.now(UTC)
    name = f"{now:%H%M%S}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
    path = f"{folder}/{name}"
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    if local:
        fs.makedirs(folder, exist_ok=True)
        # A dot-name that the ``*.parquet`` listing skips, renamed in one step on the same disk.
        temporary = f"{folder}/.{name}.tmp"
        fs.pipe_file(temporary, data)
        fs.mv(temporary, path)
    else:
        fs.pipe_file(path, data)  # object stores make one PUT visible whole
    return path
