"""PredictionRecorder: sampling, sensitive columns, the bound, sink failures and close."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from corral.registry.entities import ColumnSpec
from corral.serving.deployment import Deployment, LogPolicy
from corral.serving.gateway import Route
from corral.serving.metrics import ServingMetrics
from corral.serving.predictor import ArrayPredictor
from corral.serving.recorder import PredictionRecorder, hash_value, is_sampled

COLUMNS = (
    ColumnSpec("age", "float64"),
    ColumnSpec("email", "string", sensitive=True),
    ColumnSpec("city", "string"),
)


class Collected:
    """A sink that keeps what it is given; ``failing`` makes it raise like a store that is down."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[dict[str, Any]]]] = []
        self.failing = False
        self.calls = 0

    def __call__(self, model: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self.calls += 1
        if self.failing:
            raise OSError("the artifact store is unavailable")
        self.batches.append((model, [dict(r) for r in rows]))

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [row for _, rows in self.batches for row in rows]


def route(
    *, sample_rate: float = 1.0, sensitive: str = "hash", log: bool = True, model: str = "m"
) -> Route:
    return Route(
        model=model,
        version=3,
        alias="champion",
        consumer=None,
        pinned=False,
        deployment=Deployment(
            monitoring=LogPolicy(log=log, sample_rate=sample_rate, sensitive=sensitive)
        ),
        columns=COLUMNS,
    )


def matrix(rows: int = 2) -> np.ndarray:
    data = [[30.0 + i, f"user{i}@example.com", "Lyon"] for i in range(rows)]
    return np.array(data, dtype=object)


def classifier() -> ArrayPredictor:
    def predict(x: np.ndarray) -> np.ndarray:
        return (x[:, 0].astype(float) > 30.5).astype(int)

    def proba(x: np.ndarray) -> np.ndarray:
        p = (x[:, 0].astype(float) - 29.0) / 10.0
        return np.column_stack([1 - p, p])

    return ArrayPredictor(predict, columns=COLUMNS, proba=proba)


def record(recorder: PredictionRecorder, where: Route, request_id: str, rows: int = 2) -> None:
    x = matrix(rows)
    model = classifier()
    recorder.record(where, request_id, 0.004, matrix=x, outputs=model.predict(x), predictor=model)


def test_rows_follow_the_contract_with_probabilities_from_the_flush() -> None:
    sink = Collected()
    recorder = PredictionRecorder(sink, salt=b"s")
    record(recorder, route(), "req-1")
    assert sink.rows == []  # nothing is written on the request path
    recorder.close()
    first, second = sink.rows
    assert first["request_id"] == second["request_id"] == "req-1"
    assert (first["row"], second["row"]) == (0, 1)
    assert first["model"] == "m"
    assert first["version"] == 3
    assert first["alias"] == "champion"
    assert first["consumer"] is None
    assert first["error"] is None
    assert first["latency_ms"] == pytest.approx(4.0)
    assert (first["prediction_label"], second["prediction_label"]) == ("0", "1")
    assert (first["prediction_value"], second["prediction_value"]) == (0.0, 1.0)
    assert first["proba"] == pytest.approx([0.9, 0.1])
    assert first["score"] == pytest.approx(0.1)  # binary: P(classes[1])
    assert first["in_age"] == 30.0
    assert first["in_city"] == "Lyon"
    assert first["ts"].tzinfo is not None


def test_multiclass_score_is_the_largest_probability() -> None:
    sink = Collected()
    recorder = PredictionRecorder(sink)
    x = np.array([[1.0], [2.0]])
    model = ArrayPredictor(
        lambda a: np.array(["a", "c"]),
        proba=lambda a: np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]),
    )
    plain = Route("m", 1, None, None, False, Deployment(), ())
    recorder.record(plain, "r", 0.001, matrix=x, outputs=model.predict(x), predictor=model)
    recorder.close()
    assert [r["score"] for r in sink.rows] == pytest.approx([0.7, 0.6])
    assert [r["prediction_label"] for r in sink.rows] == ["a", "c"]
    assert [r["in_0"] for r in sink.rows] == [1.0, 2.0]  # no signature: features by index


def test_sensitive_columns_are_hashed_with_the_salt() -> None:
    sink = Collected()
    recorder = PredictionRecorder(sink, salt=b"pepper")
    record(recorder, route(sensitive="hash"), "r")
    recorder.close()
    digest = hashlib.sha256(b"pepperuser0@example.com").hexdigest()[:16]
    assert sink.rows[0]["in_email"] == f"sha256:{digest}"
    assert all("example.com" not in str(row) for row in sink.rows)
    assert hash_value("user0@example.com", b"other") != sink.rows[0]["in_email"]


def test_sensitive_columns_are_dropped_when_the_config_says_so() -> None:
    sink = Collected()
    recorder = PredictionRecorder(sink)
    record(recorder, route(sensitive="drop"), "r")
    recorder.close()
    assert sink.rows
    assert all("in_email" not in row for row in sink.rows)
    assert sink.rows[0]["in_city"] == "Lyon"


def test_sampling_is_per_request_and_deterministic() -> None:
    ids = [f"request-{i}" for i in range(2000)]
    kept = [i for i in ids if is_sampled(i, 0.25)]
    assert 400 < len(kept) < 600
    assert kept == [i for i in ids if is_sampled(i, 0.25)]
    sink = Collected()
    recorder = PredictionRecorder(sink)
    for request_id in ids[:200]:
        record(recorder, route(sample_rate=0.25), request_id, rows=1)
    recorder.close()
    logged = {row["request_id"] for row in sink.rows}
    assert logged == {i for i in ids[:200] if is_sampled(i, 0.25)}
    assert recorder.counts()["sampled_out"] == 200 - len(logged)


def test_a_config_can_turn_logging_off_and_rate_zero_logs_nothing() -> None:
    sink = Collected()
    recorder = PredictionRecorder(sink)
    record(recorder, route(log=False), "a")
    record(recorder, route(sample_rate=0.0), "b")
    recorder.close()
    assert sink.rows == []


def test_an_error_after_routing_is_one_row_with_its_code() -> None:
    sink = Collected()
    recorder = PredictionRecorder(sink)
    recorder.record(route(), "bad", 0.002, error="invalid_argument")
    recorder.close()
    (row,) = sink.rows
    assert row["error"] == "invalid_argument"
    assert row["row"] == 0
    assert row["prediction_label"] is None
    assert row["proba"] is None
    assert "in_age" not in row or row["in_age"] is None


def test_over_the_bound_new_rows_are_dropped_and_counted() -> None:
    sink = Collected()
    metrics = ServingMetrics()
    recorder = PredictionRecorder(sink, max_rows=5, batch_rows=1000, metrics=metrics)
    for i in range(4):
        record(recorder, route(), f"r{i}")  # 2 rows each: the third and fourth do not fit
    assert recorder.queued_rows == 4
    recorder.close()
    assert {r["request_id"] for r in sink.rows} == {"r0", "r1"}  # the oldest are kept
    assert recorder.counts()["dropped"] == 4
    assert (
        metrics.registry.get_sample_value(
            "corral_prediction_log_rows_total", {"outcome": "dropped"}
        )
        == 4
    )
    assert (
        metrics.registry.get_sample_value(
            "corral_prediction_log_rows_total", {"outcome": "written"}
        )
        == 4
    )


def test_rows_are_kept_while_the_sink_fails_and_written_once_it_recovers() -> None:
    sink = Collected()
    sink.failing = True
    metrics = ServingMetrics()
    recorder = PredictionRecorder(sink, max_rows=6, batch_rows=1000, metrics=metrics)
    record(recorder, route(), "a")
    assert recorder.flush() == 0
    record(recorder, route(), "b")
    assert recorder.flush() == 0
    record(recorder, route(), "c")
    record(recorder, route(), "d")  # 8 rows would exceed the bound of 6: dropped
    assert recorder.queued_rows == 6
    assert metrics.registry.get_sample_value("corral_prediction_log_queue_rows") == 4
    sink.failing = False
    assert recorder.flush() == 6
    assert sorted({r["request_id"] for r in sink.rows}) == ["a", "b", "c"]
    counts = recorder.counts()
    assert counts["dropped"] == 2
    assert counts["written"] == 6
    assert counts["failed_flush"] == 2 + 4  # 'a' failed twice, 'b' once
    recorder.close()


def test_the_thread_flushes_on_its_interval() -> None:
    written = threading.Event()
    sink = Collected()

    def signal(model: str, rows: Sequence[Mapping[str, Any]]) -> None:
        sink(model, rows)
        written.set()

    recorder = PredictionRecorder(signal, flush_seconds=0.05)
    record(recorder, route(), "r")
    assert written.wait(5)
    assert len(sink.rows) == 2
    recorder.close()


def test_close_writes_everything_and_later_records_are_counted_as_dropped() -> None:
    sink = Collected()
    recorder = PredictionRecorder(sink, flush_seconds=60)
    for i in range(50):
        record(recorder, route(model=f"m{i % 3}"), f"r{i}")
    recorder.close()
    assert len(sink.rows) == 100
    assert {model for model, _ in sink.batches} == {"m0", "m1", "m2"}
    record(recorder, route(), "late")
    assert recorder.counts()["dropped"] == 2


def test_record_never_raises_into_serving() -> None:
    sink = Collected()
    recorder = PredictionRecorder(sink)
    recorder.record(None, "r", 0.1)  # type: ignore[arg-type]
    record(recorder, route(), "ok")
    recorder.close()
    assert {r["request_id"] for r in sink.rows} == {"ok"}


def test_the_monitoring_section_of_a_config_is_read_and_checked() -> None:
    from corral.errors import InvalidArgument
    from corral.serving.deployment import parse_deployment

    policy = parse_deployment({"monitoring": {"sample_rate": 0.1, "sensitive": "drop"}}).monitoring
    assert policy == LogPolicy(log=True, sample_rate=0.1, sensitive="drop")
    assert parse_deployment(None).monitoring == LogPolicy()
    for values, field in [
        ({"sample_rate": 1.5}, "monitoring.sample_rate"),
        ({"sensitive": "mask"}, "monitoring.sensitive"),
        ({"log": "yes"}, "monitoring.log"),
        ({"rate": 1}, "rate"),
    ]:
        with pytest.raises(InvalidArgument, match=field):
            parse_deployment({"monitoring": values})
