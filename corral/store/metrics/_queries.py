"""DuckDB over the log files: the window's rows as views, and the figures per bucket.

Everything is aggregated in SQL; Python only sees one small row per bucket (or per bucket and
pair of classes), never the log itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from corral.store.metrics._layout import LogFiles
from corral.store.metrics._metrics import Task, add_classification, add_regression

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Columns every query uses, with the type to assume when no file of the window has them.
_PREDICTION_COLUMNS = {
    "request_id": "VARCHAR",
    "row": "INTEGER",
    "ts": "TIMESTAMPTZ",
    "version": "INTEGER",
    "latency_ms": "DOUBLE",
    "error": "VARCHAR",
    "prediction_label": "VARCHAR",
    "prediction_value": "DOUBLE",
    "score": "DOUBLE",
    "proba": "DOUBLE[]",
    "out_of_range": "BOOLEAN",  # absent from files written before the reference-range check
}


def connect(files: LogFiles) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory connection that can read the log files (no extension, no download)."""
    con = duckdb.connect()
    if not files.is_local:
        con.register_filesystem(files.fs)
    return con


def one(con: duckdb.DuckDBPyConnection, query: str) -> tuple[Any, ...]:
    """The first row of a query (fetched whole: DuckDB refuses work on a half-read result)."""
    rows = con.sql(query).fetchall()
    return rows[0] if rows else ()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _timestamp(moment: datetime) -> str:
    return f"TIMESTAMPTZ {_literal(moment.astimezone(UTC).isoformat())}"


def _scan(urls: Sequence[str], *, filename: bool = False) -> str:
    listed = ", ".join(_literal(url) for url in urls)
    options = "union_by_name = true, hive_partitioning = false"
    if filename:
        options += ", filename = true"  # which file a row came from, for type changes
    return f"read_parquet([{listed}], {options})"


def parquet_types(con: duckdb.DuckDBPyConnection, urls: Sequence[str]) -> dict[str, str]:
    """Each column of the union of the files, with its DuckDB type (from the footers only)."""
    rows = con.sql(f"DESCRIBE SELECT * FROM {_scan(urls)}").fetchall()
    return {str(row[0]): str(row[1]) for row in rows}


@dataclass
class Window:
    """The prediction rows of one model in ``[start, end)`` as the temporary view ``preds``."""

    con: duckdb.DuckDBPyConnection
    types: dict[str, str]  # columns of the files, empty when there are none

    @property
    def empty(self) -> bool:
        return not self.types


def open_window(
    files: LogFiles,
    model: str,
    start: datetime,
    end: datetime,
    *,
    version: int | None,
) -> Window:
    """Create the ``preds`` view (missing common columns read as NULL) on a new connection."""
    con = connect(files)
    urls = files.list("predictions", model, start, end)
    if not urls:
        columns = ", ".join(f"NULL::{kind} AS {name}" for name, kind in _PREDICTION_COLUMNS.items())
        con.execute(f"CREATE TEMP VIEW preds AS SELECT {columns} WHERE false")
        return Window(con, {})
    types = parquet_types(con, urls)
    extra = ", ".join(
        f"NULL::{kind} AS {name}" for name, kind in _PREDICTION_COLUMNS.items() if name not in types
    )
    where = [f"ts >= {_timestamp(start)}", f"ts < {_timestamp(end)}"]
    if version is not None:
        where.append(f"version = {int(version)}")
    con.execute(
        f"CREATE TEMP VIEW preds AS SELECT *{', ' + extra if extra else ''} "
        f"FROM {_scan(urls, filename=True)} "
        f"WHERE {' AND '.join(where)}"
    )
    return Window(con, types)


def open_feedback(
    files: LogFiles, model: str, start: datetime, window: Window, *, join: bool = True
) -> None:
    """Create ``latest`` (the newest label per request row) and ``labelled`` (a small table).

    ``labelled`` holds the window's successful rows that have a label, with only the columns
    the figures need, so that the join is made once and not once per figure.
    """
    # Feedback comes after the prediction: older day partitions cannot label this window
    # (one day of slack for clocks).
    urls = files.list("feedback", model, start - timedelta(days=1), None)
    con = window.con
    if urls and not window.empty:
        latest = (
            "SELECT request_id, row, arg_max(label_text, received_at) AS label_text, "
            f"arg_max(label_value, received_at) AS label_value FROM {_scan(urls)} GROUP BY ALL"
        )
    else:
        latest = (
            "SELECT NULL::VARCHAR AS request_id, NULL::INTEGER AS row, "
            "NULL::VARCHAR AS label_text, NULL::DOUBLE AS label_value WHERE false"
        )
    con.execute(f"CREATE TEMP VIEW latest AS {latest}")
    if not join:
        return
    width = one(con, "SELECT max(len(proba)) FROM preds WHERE error IS NULL")[0]
    # Class probabilities are only needed (and only copied) for a multiclass log loss.
    proba = ", p.proba" if width and width > 2 else ", NULL::DOUBLE[] AS proba"
    con.execute(
        "CREATE TEMP TABLE labelled AS SELECT p.ts, p.prediction_label, p.prediction_value, "
        "coalesce(p.score, CASE WHEN len(p.proba) = 2 THEN p.proba[2] END) AS score"
        f"{proba}, f.label_text, f.label_value "
        "FROM preds p JOIN latest f USING (request_id, row) WHERE p.error IS NULL"
    )


def known_request_ids(files: LogFiles, model: str, request_ids: Sequence[str]) -> set[str]:
    """Which of ``request_ids`` appear in any of the model's prediction files."""
    urls = files.list("predictions", model)
    wanted = sorted({str(request_id) for request_id in request_ids})
    if not urls or not wanted:
        return set()
    with connect(files) as con:
        con.register("wanted", pa.table({"request_id": pa.array(wanted, pa.string())}))
        rows = con.sql(
            f"SELECT DISTINCT p.request_id FROM (SELECT request_id FROM {_scan(urls)}) p "
            "SEMI JOIN wanted w ON p.request_id = w.request_id"
        ).fetchall()
    return {str(row[0]) for row in rows}


def _sorted_labels(labels: set[str]) -> tuple[str, ...]:
    def number(text: str) -> float | None:
        try:
            return float(text)
        except ValueError:
            return None

    if all(number(label) is not None for label in labels):
        return tuple(sorted(labels, key=lambda label: float(label)))
    return tuple(sorted(labels))


def detect_task(window: Window) -> Task:
    """Classification when rows carry probabilities or text labels, regression when numbers."""
    con = window.con
    with_proba, with_score, text, numeric, width = one(
        con,
        "SELECT count(proba), count(score), "
        "count(*) FILTER (WHERE prediction_label IS NOT NULL AND prediction_value IS NULL), "
        "count(prediction_value), max(len(proba)) FROM preds WHERE error IS NULL",
    )
    if with_proba or with_score or text:
        opened = _relations(con)
        source = "labelled" if "labelled" in opened else "latest" if "latest" in opened else None
        label_sql = f" UNION SELECT DISTINCT label_text FROM {source}" if source else ""
        found = con.sql(
            f"SELECT DISTINCT prediction_label FROM preds WHERE error IS NULL{label_sql}"
        ).fetchall()
        classes = _sorted_labels({str(row[0]) for row in found if row[0] is not None})
        n_classes = int(width) if width else len(classes)
        return Task("classification", classes, max(n_classes, len(classes)))
    if numeric:
        return Task("regression")
    return Task(None)


def _relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    tables = con.sql("SELECT table_name FROM duckdb_tables()").fetchall()
    views = con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    return {str(row[0]) for row in tables + views}


def buckets(
    files: LogFiles,
    model: str,
    start: datetime,
    end: datetime,
    bucket_seconds: int,
    *,
    version: int | None,
) -> list[dict[str, Any]]:
    """Traffic, errors, latency and realised performance per bucket of ``[start, end)``."""
    size = timedelta(seconds=bucket_seconds)
    count = max(0, -(-int((end - start).total_seconds()) // bucket_seconds))
    result = [
        _empty_bucket(start + i * size, min(start + (i + 1) * size, end)) for i in range(count)
    ]
    if not result:
        return result
    window = open_window(files, model, start, end, version=version)
    try:
        if not window.empty:
            _fill(files, model, start, bucket_seconds, window, result)
    finally:
        window.con.close()
    return result


def _fill(
    files: LogFiles,
    model: str,
    start: datetime,
    bucket_seconds: int,
    window: Window,
    result: list[dict[str, Any]],
) -> None:
    open_feedback(files, model, start, window)
    con = window.con
    start_us = (start - _EPOCH) // timedelta(microseconds=1)
    bucket = f"(epoch_us(ts) - {start_us}) // {bucket_seconds * 1_000_000}"
    traffic = con.sql(
        f"SELECT {bucket} AS b, count(*) FILTER (WHERE row = 0), "
        "count(*) FILTER (WHERE error IS NULL), count(*) FILTER (WHERE error IS NOT NULL), "
        "quantile_cont(latency_ms, [0.5, 0.95, 0.99]) FILTER (WHERE row = 0) "
        "FROM preds GROUP BY b"
    ).fetchall()
    for b, requests, rows, errors, latency in traffic:
        figures = result[int(b)]
        figures.update(requests=requests, rows=rows, errors=errors)
        figures["error_rate"] = errors / requests if requests else None
        if latency is not None:
            for key, value in zip(("p50", "p95", "p99"), latency, strict=True):
                figures[f"{key}_latency_ms"] = value
    for b, labelled in con.sql(
        f"SELECT {bucket} AS b, count(*) FROM labelled GROUP BY b"
    ).fetchall():
        result[int(b)]["labelled"] = labelled
    task = detect_task(window)
    for figures in result:
        figures["task"] = task.name
    if task.name == "classification":
        add_classification(con, bucket, task, result)
    elif task.name == "regression":
        add_regression(con, bucket, result)


def _empty_bucket(start: datetime, end: datetime) -> dict[str, Any]:
    figures: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat()}
    figures.update(requests=0, rows=0, errors=0, error_rate=None)
    figures.update(p50_latency_ms=None, p95_latency_ms=None, p99_latency_ms=None)
    figures.update(labelled=0, task=None)
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"):
        figures[name] = None
    figures.update(mae=None, rmse=None, r2=None)
    return figures


def scores(
    files: LogFiles, model: str, start: datetime, end: datetime, *, version: int | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[Any]]:
    """A binary classifier's ``P(positive)``, timestamps (µs) and label texts (None if none)."""
    nothing = (np.empty(0, np.float64), np.empty(0, np.int64), np.empty(0, object))
    window = open_window(files, model, start, end, version=version)
    try:
        if window.empty:
            return nothing
        open_feedback(files, model, start, window, join=False)
        if not detect_task(window).binary:
            return nothing
        found = window.con.sql(
            "SELECT p.score AS score, epoch_us(p.ts) AS us, l.label_text AS label "
            "FROM preds p LEFT JOIN latest l USING (request_id, row) "
            "WHERE p.error IS NULL AND p.score IS NOT NULL ORDER BY us"
        ).fetchnumpy()
    finally:
        window.con.close()
    labels = np.ma.getdata(found["label"]).astype(object)
    labels[np.ma.getmaskarray(found["label"])] = None
    return (
        np.ma.filled(np.ma.asarray(found["score"], dtype=np.float64), np.nan),
        np.ma.filled(np.ma.asarray(found["us"], dtype=np.int64), 0),
        labels,
    )
