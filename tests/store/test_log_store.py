"""ParquetLogStore: rows written as Parquet per model and day, read back as figures with DuckDB."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn import metrics

from corral.store.metrics import ParquetLogStore
from tests.fixtures.s3 import S3Location

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
HOUR = 3600


@pytest.fixture
def store(tmp_path: Path) -> ParquetLogStore:
    return ParquetLogStore(str(tmp_path / "artifacts"))


def _prediction(
    request_id: str,
    ts: datetime,
    *,
    row: int = 0,
    label: Any = None,
    score: float | None = None,
    latency_ms: float = 5.0,
    error: str | None = None,
    version: int = 1,
    **inputs: Any,
) -> dict[str, Any]:
    classes = score is not None
    return {
        "request_id": request_id,
        "row": row,
        "ts": ts,
        "model": "churn",
        "version": version,
        "alias": "prod",
        "consumer": None,
        "latency_ms": latency_ms,
        "error": error,
        "prediction_label": None if label is None else str(label),
        "prediction_value": None if label is None or isinstance(label, str) else float(label),
        "score": score,
        "proba": [1 - score, score] if classes and score is not None else None,
        **{f"in_{name}": value for name, value in inputs.items()},
    }


def _feedback(request_id: str, label: Any, *, row: int = 0, at: datetime | None = None) -> dict:
    return {
        "request_id": request_id,
        "row": row,
        "label_text": str(label),
        "label_value": float(label) if not isinstance(label, str) else None,
        "received_at": at or T0 + timedelta(days=1),
    }


def _binary_stream(n: int, seed: int = 0) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    labels = (rng.random(n) < scores).astype(int)
    rows = [
        _prediction(f"r{i}", T0 + timedelta(seconds=i), label=int(s > 0.5), score=float(s))
        for i, s in enumerate(scores)
    ]
    return rows, scores, labels


def test_buckets_count_requests_errors_and_per_request_latency(store: ParquetLogStore) -> None:
    rows = []
    for i in range(10):  # 10 requests of 3 rows in the first hour, latency 1..10 ms
        for row in range(3):
            ts = T0 + timedelta(minutes=i)
            rows.append(_prediction(f"a{i}", ts, row=row, label=1, score=0.9, latency_ms=i + 1))
    rows += [_prediction(f"e{i}", T0 + timedelta(minutes=30), error="bad_input") for i in range(2)]
    rows.append(_prediction("b0", T0 + timedelta(hours=1, minutes=5), label=0, score=0.1))
    store.write_predictions("churn", rows)

    first, second, third = store.buckets("churn", T0, T0 + timedelta(hours=3), HOUR)

    assert (first["start"], first["end"]) == (T0.isoformat(), (T0 + timedelta(hours=1)).isoformat())
    assert (first["requests"], first["rows"], first["errors"]) == (12, 30, 2)
    assert first["error_rate"] == pytest.approx(2 / 12)
    latencies = [float(i + 1) for i in range(10)] + [5.0, 5.0]
    for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        assert first[f"{name}_latency_ms"] == pytest.approx(np.percentile(latencies, q))
    assert (second["requests"], second["rows"], second["errors"]) == (1, 1, 0)
    assert third["requests"] == 0
    assert third["error_rate"] is None
    assert third["p95_latency_ms"] is None
    assert first["labelled"] == 0
    assert first["accuracy"] is None


def test_classification_figures_match_scikit_learn(store: ParquetLogStore) -> None:
    rows, scores, labels = _binary_stream(3000)
    store.write_predictions("churn", rows)
    store.write_feedback("churn", [_feedback(f"r{i}", y) for i, y in enumerate(labels)])

    # 3000 rows one second apart: the first bucket holds the first 1800.
    first, second = store.buckets("churn", T0, T0 + timedelta(hours=1), 1800)

    for figures, part in ((first, slice(0, 1800)), (second, slice(1800, 3000))):
        y, s = labels[part], scores[part]
        predicted = (s > 0.5).astype(int)
        assert figures["task"] == "classification"
        assert figures["labelled"] == len(y)
        assert figures["accuracy"] == pytest.approx(metrics.accuracy_score(y, predicted))
        assert figures["precision"] == pytest.approx(metrics.precision_score(y, predicted))
        assert figures["recall"] == pytest.approx(metrics.recall_score(y, predicted))
        assert figures["f1"] == pytest.approx(metrics.f1_score(y, predicted))
        assert figures["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, s))
        assert figures["log_loss"] == pytest.approx(metrics.log_loss(y, s))
        assert figures["mae"] is None


def test_roc_auc_averages_tied_scores(store: ParquetLogStore) -> None:
    scores = [0.5, 0.5, 0.5, 0.9, 0.1, 0.9]
    labels = [1, 0, 1, 1, 0, 0]
    store.write_predictions(
        "churn",
        [_prediction(f"r{i}", T0, label=int(s > 0.5), score=s) for i, s in enumerate(scores)],
    )
    store.write_feedback("churn", [_feedback(f"r{i}", y) for i, y in enumerate(labels)])
    (bucket,) = store.buckets("churn", T0, T0 + timedelta(hours=1), HOUR)
    assert bucket["roc_auc"] == pytest.approx(metrics.roc_auc_score(labels, scores))


def test_a_window_of_negatives_only_still_scores_class_1_as_positive(
    store: ParquetLogStore,
) -> None:
    store.write_predictions(
        "churn", [_prediction(f"r{i}", T0, label=0, score=0.1 * i) for i in range(4)]
    )
    store.write_feedback("churn", [_feedback(f"r{i}", 0) for i in range(4)])
    (bucket,) = store.buckets("churn", T0, T0 + timedelta(hours=1), HOUR)
    assert (bucket["accuracy"], bucket["precision"], bucket["recall"]) == (1.0, None, None)
    assert bucket["roc_auc"] is None
    assert bucket["log_loss"] == pytest.approx(
        metrics.log_loss([0, 0, 0, 0], [0.0, 0.1, 0.2, 0.3], labels=[0, 1])
    )


def test_multiclass_figures_are_macro_averages(store: ParquetLogStore) -> None:
    rng = np.random.default_rng(1)
    classes = ["bird", "cat", "dog"]
    proba = rng.dirichlet([1, 1, 1], 500)
    predicted = [classes[i] for i in proba.argmax(axis=1)]
    actual = [classes[i] for i in rng.integers(0, 3, 500)]
    rows = []
    for i, p in enumerate(proba):
        row = _prediction(f"r{i}", T0 + timedelta(seconds=i), label=predicted[i])
        row.update(score=float(p.max()), proba=[float(v) for v in p])
        rows.append(row)
    store.write_predictions("churn", rows)
    store.write_feedback("churn", [_feedback(f"r{i}", y) for i, y in enumerate(actual)])

    (bucket,) = store.buckets("churn", T0, T0 + timedelta(hours=1), HOUR)

    assert bucket["accuracy"] == pytest.approx(metrics.accuracy_score(actual, predicted))
    for name in ("precision", "recall", "f1"):
        scorer = getattr(metrics, f"{name}_score")
        assert bucket[name] == pytest.approx(scorer(actual, predicted, average="macro"))
    assert bucket["log_loss"] == pytest.approx(metrics.log_loss(actual, proba, labels=classes))
    assert bucket["roc_auc"] is None


def test_regression_figures_match_scikit_learn(store: ParquetLogStore) -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(10, 3, 400)
    guess = truth + rng.normal(0, 1, 400)
    rows = [_prediction(f"r{i}", T0, label=float(g)) for i, g in enumerate(guess)]
    store.write_predictions("churn", rows)
    store.write_feedback("churn", [_feedback(f"r{i}", float(t)) for i, t in enumerate(truth)])

    (bucket,) = store.buckets("churn", T0, T0 + timedelta(minutes=30), HOUR)

    assert bucket["task"] == "regression"
    assert bucket["end"] == (T0 + timedelta(minutes=30)).isoformat()  # the last bucket is cut
    assert bucket["mae"] == pytest.approx(metrics.mean_absolute_error(truth, guess))
    assert bucket["rmse"] == pytest.approx(math.sqrt(metrics.mean_squared_error(truth, guess)))
    assert bucket["r2"] == pytest.approx(metrics.r2_score(truth, guess))
    assert bucket["accuracy"] is None


def test_feedback_joins_on_request_and_row_and_the_latest_label_wins(
    store: ParquetLogStore,
) -> None:
    store.write_predictions(
        "churn",
        [_prediction("r1", T0, row=row, label=1, score=0.8) for row in range(3)]
        + [_prediction("r2", T0, label=0, score=0.2)],
    )
    later = T0 + timedelta(days=2)
    store.write_feedback(
        "churn",
        [
            _feedback("r1", 0, row=0, at=later),  # corrected below, in a later upload
            _feedback("r1", 1, row=1),
            _feedback("r2", 1, at=later + timedelta(hours=1)),  # received last: it wins
            _feedback("unknown", 1),
            _feedback("r1", 1, row=7),  # no such row
        ],
    )
    # A later upload: the newest receipt time wins, whatever the upload order.
    store.write_feedback(
        "churn",
        [_feedback("r1", 1, row=0, at=later + timedelta(days=1)), _feedback("r2", 0, at=later)],
    )

    (bucket,) = store.buckets("churn", T0, T0 + timedelta(hours=1), HOUR)

    # r1 row 0 → 1 (latest), r1 row 1 → 1, r1 row 2 unlabelled, r2 → 1 (its latest label).
    assert bucket["labelled"] == 3
    assert bucket["accuracy"] == pytest.approx(2 / 3)
    _, _, labels = store.scores("churn", T0, T0 + timedelta(hours=1))
    assert sorted(labels, key=str) == ["1", "1", "1", None]


def test_known_request_ids_looks_through_every_day(store: ParquetLogStore) -> None:
    store.write_predictions(
        "churn",
        [_prediction("old", T0 - timedelta(days=40)), _prediction("new", T0, error="boom")],
    )
    assert store.known_request_ids("churn", ["old", "new", "never"]) == {"old", "new"}
    assert store.known_request_ids("other", ["old"]) == set()
    assert store.known_request_ids("churn", []) == set()


def test_rows_spanning_days_go_to_one_file_per_day_with_nothing_half_written(
    store: ParquetLogStore, tmp_path: Path
) -> None:
    late = T0.replace(hour=23, minute=59)
    store.write_predictions(
        "churn", [_prediction("a", late), _prediction("b", late + timedelta(minutes=2))]
    )
    store.write_feedback("churn", [_feedback("a", 1)])

    base = tmp_path / "artifacts" / "monitoring"
    files = sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
    assert [f.rsplit("/", 1)[0] for f in files] == [
        "feedback/model=churn/date=2026-11-28",
        "predictions/model=churn/date=2026-11-27",
        "predictions/model=churn/date=2026-11-28",
    ]
    assert all(re.fullmatch(r"\d{6}-\d+-[0-9a-f]{8}\.parquet", f.rsplit("/", 1)[1]) for f in files)
    table = pq.read_table(base / files[1])
    assert table.schema.field("ts").type.tz == "UTC"
    assert table.schema.field("row").type == "int32"
    assert table.column("request_id").to_pylist() == ["a"]


def test_values_of_other_types_are_coerced_to_the_log_columns(
    store: ParquetLogStore, tmp_path: Path
) -> None:
    naive = T0.replace(tzinfo=None)
    rows = [
        {**_prediction("a", naive, label=1, score=0.5), "version": np.int64(3), "plan": "pro"},
        {**_prediction("b", T0.isoformat(), label=0), "latency_ms": 7, "plan": True},
        {**_prediction("c", 1_795_773_600_000_000), "row": np.int32(2), "plan": 3},
    ]
    for row in rows:
        row["in_plan"] = row.pop("plan")
    store.write_predictions("churn", rows)

    (path,) = (tmp_path / "artifacts").rglob("*.parquet")
    table = pq.read_table(path)
    assert table.column("ts").to_pylist() == [T0, T0, T0]
    assert table.column("version").to_pylist() == [3, 1, 1]
    assert table.column("row").to_pylist() == [0, 0, 2]
    assert table.column("latency_ms").to_pylist() == [5.0, 7.0, 5.0]
    assert table.column("in_plan").to_pylist() == ["pro", "true", "3"]
    (bucket,) = store.buckets("churn", naive, naive + timedelta(hours=1), HOUR)
    assert bucket["requests"] == 2  # a, b; c is row 2 of a request without row 0
    paris = timezone(timedelta(hours=1))
    (same,) = store.buckets("churn", T0.astimezone(paris), T0 + timedelta(hours=1), HOUR)
    assert same == bucket


def test_a_window_reads_only_the_day_partitions_it_overlaps(
    store: ParquetLogStore, tmp_path: Path
) -> None:
    store.write_predictions("churn", [_prediction("today", T0)])
    broken = tmp_path / "artifacts/monitoring/predictions/model=churn/date=2026-11-20"
    broken.mkdir(parents=True)
    (broken / "000000-1-deadbeef.parquet").write_bytes(b"not parquet")  # would fail if read

    (bucket,) = store.buckets("churn", T0, T0 + timedelta(hours=1), HOUR)

    assert bucket["requests"] == 1
    with pytest.raises(duckdb.Error):  # the same broken file, read when the window covers it
        store.buckets("churn", T0 - timedelta(days=7), T0, 7 * 24 * HOUR)


def test_version_filter_keeps_only_that_version(store: ParquetLogStore) -> None:
    store.write_predictions(
        "churn",
        [_prediction("v1", T0, version=1), _prediction("v2", T0, version=2, latency_ms=9.0)],
    )
    (both,) = store.buckets("churn", T0, T0 + timedelta(hours=1), HOUR)
    (two,) = store.buckets("churn", T0, T0 + timedelta(hours=1), HOUR, version=2)
    assert (both["requests"], two["requests"], two["p50_latency_ms"]) == (2, 1, 9.0)


def test_nothing_logged_gives_empty_buckets_not_errors(store: ParquetLogStore) -> None:
    buckets = store.buckets("churn", T0, T0 + timedelta(hours=2), HOUR)
    assert [(b["requests"], b["task"], b["accuracy"]) for b in buckets] == [(0, None, None)] * 2
    scores, stamps, labels = store.scores("churn", T0, T0 + timedelta(hours=2))
    assert scores.size == stamps.size == labels.size == 0
    assert store.columns("churn", T0, T0 + timedelta(hours=2)).rows == 0


def test_scores_are_a_binary_classifiers_positive_probabilities_in_time_order(
    store: ParquetLogStore,
) -> None:
    rows, scores, labels = _binary_stream(50)
    store.write_predictions("churn", [*rows[::-1], _prediction("x", T0, error="boom")])
    store.write_feedback("churn", [_feedback(f"r{i}", labels[i]) for i in range(10)])

    probabilities, stamps, found = store.scores("churn", T0, T0 + timedelta(hours=1))

    np.testing.assert_allclose(probabilities, scores)
    assert list(np.diff(stamps)) == [1_000_000] * 49
    assert list(found[:10]) == [str(y) for y in labels[:10]]
    assert list(found[10:]) == [None] * 40


def test_columns_present_inputs_without_prefix_and_the_prediction(store: ParquetLogStore) -> None:
    store.write_predictions(
        "churn",
        [
            _prediction("a", T0, label=1, score=0.9, age=31.0, plan="pro", emb=[0.1, 0.2]),
            _prediction("b", T0, label=0, score=0.2, age=None, plan=None, emb=[0.3, 0.4]),
            _prediction("c", T0, error="boom"),
        ],
    )
    source = store.columns("churn", T0, T0 + timedelta(hours=1))

    assert source.rows == 2
    assert source.kinds() == {
        "age": "numeric",
        "plan": "categorical",
        "emb": "other",
        "prediction": "categorical",
    }
    age = source.column("age")
    assert age.dtype == np.float64
    assert age[0] == 31.0
    assert np.isnan(age[1])
    assert list(source.column("plan")) == ["pro", None]
    assert list(source.column("prediction")) == ["1", "0"]
    assert source.type_errors("age") == 0


def test_a_feature_that_changes_type_mid_stream_counts_type_errors(
    store: ParquetLogStore,
) -> None:
    store.write_predictions("churn", [_prediction(f"n{i}", T0, age=float(i)) for i in range(5)])
    store.write_predictions(
        "churn", [_prediction("s1", T0, age="unknown"), _prediction("s2", T0, age="7")]
    )
    source = store.columns("churn", T0, T0 + timedelta(hours=1))

    assert source.kinds()["age"] == "numeric"
    values = source.column("age")
    assert sorted(v for v in values if not np.isnan(v)) == [0.0, 1.0, 2.0, 3.0, 4.0, 7.0]
    assert source.type_errors("age") == 1


def test_a_text_feature_with_a_batch_of_numbers_stays_categorical_with_type_errors(
    store: ParquetLogStore,
) -> None:
    store.write_predictions("churn", [_prediction(f"s{i}", T0, plan="pro") for i in range(5)])
    store.write_predictions("churn", [_prediction(f"n{i}", T0, plan=float(i)) for i in range(2)])
    source = store.columns("churn", T0, T0 + timedelta(hours=1))

    assert source.kinds()["plan"] == "categorical"
    assert sorted(source.column("plan")) == ["0.0", "1.0"] + ["pro"] * 5
    assert source.type_errors("plan") == 2


def test_regression_prediction_column_is_numeric(store: ParquetLogStore) -> None:
    store.write_predictions(
        "churn", [_prediction("a", T0, label=2.5), _prediction("b", T0, label=3.0)]
    )
    source = store.columns("churn", T0, T0 + timedelta(hours=1))
    assert source.kinds() == {"prediction": "numeric"}
    assert list(source.column("prediction")) == [2.5, 3.0]


@pytest.fixture
def s3_store(s3_artifact_url: S3Location) -> ParquetLogStore:
    url, options = s3_artifact_url
    return ParquetLogStore(url, options)


def test_logs_on_s3_are_written_and_queried_without_extensions(
    s3_store: ParquetLogStore, s3_artifact_url: S3Location
) -> None:
    rows, scores, labels = _binary_stream(200)
    for row in rows:
        row["in_age"] = 30.0
    s3_store.write_predictions("churn", rows)
    s3_store.write_feedback("churn", [_feedback(f"r{i}", y) for i, y in enumerate(labels)])

    (bucket,) = s3_store.buckets("churn", T0, T0 + timedelta(hours=1), HOUR)

    assert (bucket["requests"], bucket["labelled"]) == (200, 200)
    assert bucket["accuracy"] == pytest.approx(metrics.accuracy_score(labels, scores > 0.5))
    assert s3_store.known_request_ids("churn", ["r3", "nope"]) == {"r3"}
    source = s3_store.columns("churn", T0, T0 + timedelta(hours=1))
    assert source.column("age").tolist() == [30.0] * 200
    assert s3_store.scores("churn", T0, T0 + timedelta(hours=1))[0].size == 200

    # Another process adds a file to the same day: the next query sees it.
    url, options = s3_artifact_url
    ParquetLogStore(url, options).write_predictions("churn", [_prediction("late", T0)])
    (bucket,) = s3_store.buckets("churn", T0, T0 + timedelta(hours=1), HOUR)
    assert bucket["requests"] == 201
