"""Feedback uploads (CSV, JSON lines, Parquet) parsed into feedback rows, or refused whole.

Each row becomes ``{request_id, row, label_text, label_value, received_at}``. A malformed upload
is refused with ``InvalidArgument`` naming the line (CSV, JSON lines) or the column (Parquet),
so that nothing of a half-valid file is stored.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from corral.errors import InvalidArgument
from corral.monitoring.labels import label_text, label_value

FORMATS = ("csv", "jsonl", "parquet")
MAX_ROWS = 1_000_000
_ROW_LIMIT = 2**31 - 1  # rows are int32 in the log


def parse_feedback(
    data: bytes, fmt: str, *, max_rows: int = MAX_ROWS, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Feedback rows from an upload in ``fmt`` (``csv``, ``jsonl`` or ``parquet``)."""
    kind = fmt.strip().lower().lstrip(".")
    kind = {"json": "jsonl", "ndjson": "jsonl"}.get(kind, kind)
    if kind not in FORMATS:
        raise InvalidArgument(f"feedback format {fmt!r} is not supported: use {', '.join(FORMATS)}")
    if not data.strip():
        raise InvalidArgument("the feedback file is empty: send request_id and label per row")
    received_at = now or datetime.now(UTC)
    records = {"csv": _csv, "jsonl": _jsonl, "parquet": _parquet}[kind](data)
    rows: list[dict[str, Any]] = []
    for where, request_id, label, row in records:
        if len(rows) >= max_rows:
            raise InvalidArgument(
                f"the feedback file has more than {max_rows} rows: split it into smaller files"
            )
        rows.append(_feedback_row(where, request_id, label, row, received_at))
    if not rows:
        raise InvalidArgument("the feedback file has no rows: send request_id and label per row")
    return rows


def _feedback_row(
    where: str, request_id: Any, label: Any, row: Any, received_at: datetime
) -> dict[str, Any]:
    if request_id is None or not str(request_id).strip():
        raise InvalidArgument(f"{where}: request_id is missing")
    text = label_text(label)
    if text is None or text == "":
        raise InvalidArgument(f"{where}: label is missing")
    return {
        "request_id": str(request_id).strip(),
        "row": _row_number(where, row),
        "label_text": text,
        "label_value": label_value(label),
        "received_at": received_at,
    }


def _row_number(where: str, value: Any) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    if isinstance(value, bool):
        raise InvalidArgument(f"{where}: row {value!r} is not an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())  # "3" and "3.0" (as spreadsheets write it) are 3
        except ValueError:
            raise InvalidArgument(f"{where}: row {value!r} is not an integer") from None
        if not number.is_integer():
            raise InvalidArgument(f"{where}: row {value!r} is not an integer")
        value = int(number)
    if not isinstance(value, int):
        raise InvalidArgument(f"{where}: row {value!r} is not an integer")
    if not 0 <= value <= _ROW_LIMIT:
        raise InvalidArgument(f"{where}: row {value} is out of range (0 to {_ROW_LIMIT})")
    return value


Record = tuple[str, Any, Any, Any]  # (where, request_id, label, row)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InvalidArgument(f"line {line}: the feedback file is not UTF-8 text") from None


def _csv(data: bytes) -> Iterator[Record]:
    reader = csv.DictReader(io.StringIO(_text(data), newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as error:
        raise InvalidArgument(f"line 1: the CSV header cannot be read ({error})") from None
    names = [name.strip() for name in header]
    for needed in ("request_id", "label"):
        if needed not in names:
            raise InvalidArgument(
                f"line 1: the CSV header has no {needed!r} column; it has {', '.join(names)}"
            )
    reader.fieldnames = names
    try:
        for record in reader:
            where = f"line {reader.line_num}"
            if None in record:
                raise InvalidArgument(f"{where}: more fields than the header has columns")
            label = _blank_none(record.get("label"))
            yield where, record.get("request_id"), label, record.get("row")
    except csv.Error as error:
        raise InvalidArgument(f"line {reader.line_num}: not valid CSV ({error})") from None


def _blank_none(value: str | None) -> str | None:
    return value if value is None or value.strip() else None


def _jsonl(data: bytes) -> Iterator[Record]:
    for number, line in enumerate(_text(data).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InvalidArgument(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise InvalidArgument(f"{where}: expected a JSON object with request_id and label")
        if "label" not in record:
            raise InvalidArgument(f"{where}: the object has no 'label'")
        yield where, record.get("request_id"), record.get("label"), record.get("row")


def _parquet(data: bytes) -> Iterator[Record]:
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as error:
        raise InvalidArgument(f"the feedback file is not a Parquet file ({error})") from None
    for needed in ("request_id", "label"):
        if needed not in table.column_names:
            raise InvalidArgument(
                f"column {needed!r} is missing from the Parquet file; "
                f"it has {', '.join(table.column_names)}"
            )
    if "row" in table.column_names and not pa.types.is_integer(table.schema.field("row").type):
        raise InvalidArgument(
            f"column 'row' must hold integers, not {table.schema.field('row').type}"
        )
    request_ids = table.column("request_id").to_pylist()
    labels = table.column("label").to_pylist()
    rows = table.column("row").to_pylist() if "row" in table.column_names else [None] * len(labels)
    for index, (request_id, label, row) in enumerate(zip(request_ids, labels, rows, strict=True)):
        yield f"row {index + 1} of the Parquet file", request_id, label, row
