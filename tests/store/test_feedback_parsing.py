"""Feedback uploads: each format parsed to feedback rows; malformed ones refused by line."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corral.errors import InvalidArgument
from corral.store.metrics.feedback import parse_feedback

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_csv_rows_become_feedback_rows_with_canonical_labels() -> None:
    data = b"request_id,label,row\nr1,1.0,0\nr1,0,1\nr2,yes,\n"
    assert parse_feedback(data, "csv", now=NOW) == [
        {"request_id": "r1", "row": 0, "label_text": "1", "label_value": 1.0, "received_at": NOW},
        {"request_id": "r1", "row": 1, "label_text": "0", "label_value": 0.0, "received_at": NOW},
        {
            "request_id": "r2",
            "row": 0,
            "label_text": "yes",
            "label_value": None,
            "received_at": NOW,
        },
    ]


def test_csv_without_row_column_labels_row_zero() -> None:
    rows = parse_feedback(b"\xef\xbb\xbfrequest_id,label\nr1,2.5\n", "csv")
    assert [(r["request_id"], r["row"], r["label_value"]) for r in rows] == [("r1", 0, 2.5)]


def test_csv_row_written_as_a_whole_float_is_accepted() -> None:
    rows = parse_feedback(b"request_id,label,row\nr1,1,3.0\n", "csv")
    assert rows[0]["row"] == 3


def test_jsonl_skips_blank_lines_and_reads_labels_of_any_type() -> None:
    lines = [{"request_id": "a", "label": True}, {"request_id": "b", "label": 3, "row": 2}]
    data = ("\n".join(json.dumps(line) for line in lines) + "\n\n").encode()
    rows = parse_feedback(data, "jsonl", now=NOW)
    assert [(r["request_id"], r["row"], r["label_text"]) for r in rows] == [
        ("a", 0, "true"),
        ("b", 2, "3"),
    ]


def test_parquet_upload_is_read_by_column() -> None:
    table = pa.table({"request_id": ["a", "b"], "label": ["cat", "dog"], "row": [0, 4]})
    rows = parse_feedback(_parquet(table), "parquet")
    assert [(r["request_id"], r["row"], r["label_text"]) for r in rows] == [
        ("a", 0, "cat"),
        ("b", 4, "dog"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"request_id,label\nr1,1\n,0\n", "line 3: request_id is missing"),
        (b"request_id,label\nr1,1\nr2,\n", "line 3: label is missing"),
        (b"request_id,label,row\nr1,1,0\nr2,1,first\n", "line 3: row 'first' is not an integer"),
        (b"request_id,label,row\nr1,1,0\nr2,1,1.5\n", "line 3: row '1.5' is not an integer"),
        (b"request_id,label,row\nr1,1,-1\n", "line 2: row -1 is out of range"),
        (b"request_id,outcome\nr1,1\n", "line 1: the CSV header has no 'label' column"),
        (b"id,label\nr1,1\n", "line 1: the CSV header has no 'request_id' column"),
        (b"request_id,label\nr1,1,extra\n", "line 2: more fields than the header has columns"),
        (b"request_id,label\n", "the feedback file has no rows"),
        (b"request_id,label\nr1,\xff\n", "line 2: the feedback file is not UTF-8 text"),
    ],
)
def test_malformed_csv_is_refused_naming_the_line(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_feedback(data, "csv")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"request_id": "a", "label": 1}\n{"request_id": "b", "label": \n', "line 2: not valid"),
        (b'{"request_id": "a", "label": 1}\n\n{"label": 0}\n', "line 3: request_id is missing"),
        (b'{"request_id": "a"}\n', "line 1: the object has no 'label'"),
        (b'{"request_id": "a", "label": null}\n', "line 1: label is missing"),
        (b"[1, 2]\n", "line 1: expected a JSON object"),
        (b'{"request_id": "a", "label": 1, "row": 1.5}\n', "line 1: row 1.5 is not an integer"),
    ],
)
def test_malformed_jsonl_is_refused_naming_the_line(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_feedback(data, "jsonl")


def test_parquet_without_label_column_is_refused_naming_the_column() -> None:
    data = _parquet(pa.table({"request_id": ["a"], "target": [1]}))
    with pytest.raises(InvalidArgument, match="column 'label' is missing"):
        parse_feedback(data, "parquet")


def test_parquet_with_text_row_column_is_refused_naming_the_column() -> None:
    data = _parquet(pa.table({"request_id": ["a"], "label": [1], "row": ["zero"]}))
    with pytest.raises(InvalidArgument, match="column 'row' must hold integers"):
        parse_feedback(data, "parquet")


def test_parquet_with_null_request_id_names_the_row() -> None:
    data = _parquet(pa.table({"request_id": ["a", None], "label": [1, 0]}))
    with pytest.raises(InvalidArgument, match="row 2 of the Parquet file: request_id is missing"):
        parse_feedback(data, "parquet")


def test_bytes_that_are_not_parquet_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="not a Parquet file"):
        parse_feedback(b"request_id,label\nr1,1\n", "parquet")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_empty_upload_is_refused(fmt: str) -> None:
    with pytest.raises(InvalidArgument, match="the feedback file is empty"):
        parse_feedback(b"  \n", fmt)


def test_unknown_format_is_refused_naming_the_supported_ones() -> None:
    with pytest.raises(InvalidArgument, match="'xml' is not supported: use csv, jsonl, parquet"):
        parse_feedback(b"<a/>", "xml")


def test_upload_over_the_row_limit_is_refused() -> None:
    data = b"request_id,label\n" + b"".join(b"r%d,1\n" % i for i in range(11))
    assert len(parse_feedback(data, "csv", max_rows=11)) == 11
    with pytest.raises(InvalidArgument, match="more than 10 rows"):
        parse_feedback(data, "csv", max_rows=10)
