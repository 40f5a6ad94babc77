"""Objectives: the grammar, the metrics, the states, and the monitoring spec."""

from __future__ import annotations

from typing import Any

import pytest

from corral.errors import InvalidArgument
from corral.monitoring.entities import Objective, ObjectiveState
from corral.monitoring.objectives import (
    METRICS,
    ObjectiveSpec,
    WebhookSpec,
    objective_state,
    parse_objective,
    parse_spec,
)

SECRET = "s" * 32


def objective(text: str, **changes: Any) -> Objective:
    values = {"id": 1, "model": "clf", **parse_objective(text), **changes}
    return Objective(**values)


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("accuracy >= 0.9 over 7d, min 500", ("accuracy", ">=", 0.9, 7 * 86400, 500)),
        ("p95_latency_ms <= 50 over 1h", ("p95_latency_ms", "<=", 50.0, 3600, 1)),
        ("drift_share <= 0.3 over 1d", ("drift_share", "<=", 0.3, 86400, 1)),
        ("  r2>-0.5   OVER 15m ,  MIN 10 ", ("r2", ">", -0.5, 900, 10)),
        ("requests > 1e3 over 2w", ("requests", ">", 1000.0, 14 * 86400, 1)),
        ("error_rate < .01 over 90s", ("error_rate", "<", 0.01, 90, 1)),
    ],
)
def test_parse_objective_reads_metric_comparator_threshold_window_and_minimum(
    text: str, expected: tuple[Any, ...]
) -> None:
    fields = parse_objective(text)

    keys = ("metric", "comparator", "threshold", "window_seconds", "min_samples")
    assert tuple(fields[k] for k in keys) == expected
    assert set(fields) == set(keys)


def test_a_parsed_objective_prints_back_to_its_text() -> None:
    assert objective("accuracy >= 0.9 over 7d, min 500").expression == (
        "accuracy >= 0.9 over 7d, min 500"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("accurcy >= 0.9 over 7d", r"unknown metric 'accurcy' \(did you mean 'accuracy'\?\)"),
        ("latency <= 50 over 1h", "unknown metric 'latency'.*use one of: requests, error_rate"),
        ("accuracy 0.9 over 7d", "needs a comparator, one of >= > <= <"),
        ("accuracy == 0.9 over 7d", "comparator '==' is not one of >= > <= <"),
        (">= 0.9 over 7d", "needs a metric before '>='"),
        ("accuracy >= high over 7d", "threshold 'high' is not a number"),
        ("accuracy >= nan over 7d", "threshold 'nan' must be a finite number"),
        ("accuracy >= 90 over 7d", "accuracy is a share between 0 and 1: write 0.9, not 90"),
        ("p95_latency_ms <= -1 over 1h", "p95_latency_ms is never below 0"),
        ("accuracy >= 0.9", "it needs a window: add 'over <duration>'"),
        ("accuracy >= 0.9 over", "it needs a window"),
        ("accuracy >= 0.9 over 7 days", "window '7 days' is not a duration"),
        ("accuracy >= 0.9 over 7d, at least 5", "only 'min <count>' may follow, not 'at least 5'"),
        ("accuracy >= 0.9 over 7d, min 0", "minimum sample count '0' must be a whole number"),
        ("accuracy >= 0.9 over 7d, min 2.5", "minimum sample count '2.5'"),
        ("", "an objective must be text"),
    ],
)
def test_parse_objective_names_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_objective(text)


def test_every_metric_of_the_contract_has_a_direction() -> None:
    assert set(METRICS) == {
        "requests", "error_rate", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms",
        "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "r2",
        "estimated_accuracy", "estimated_f1", "estimated_roc_auc", "drift_share",
    }  # fmt: skip
    assert METRICS["accuracy"].higher_is_better
    assert not METRICS["p95_latency_ms"].higher_is_better
    assert not METRICS["drift_share"].higher_is_better


# --- states -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "samples", "state"),
    [
        ("accuracy >= 0.9 over 7d, min 500", 0.95, 500, ObjectiveState.OK),
        ("accuracy >= 0.9 over 7d, min 500", 0.92, 800, ObjectiveState.AT_RISK),  # < 0.045 over
        ("accuracy >= 0.9 over 7d, min 500", 0.9, 800, ObjectiveState.AT_RISK),
        ("accuracy >= 0.9 over 7d, min 500", 0.89, 800, ObjectiveState.BREACHED),
        ("accuracy >= 0.9 over 7d, min 500", 0.99, 499, ObjectiveState.NO_DATA),
        ("accuracy >= 0.9 over 7d, min 500", None, 800, ObjectiveState.NO_DATA),
        ("accuracy >= 0.9 over 7d, min 500", float("nan"), 800, ObjectiveState.NO_DATA),
        ("accuracy > 0.9 over 7d", 0.9, 10, ObjectiveState.BREACHED),
        ("p95_latency_ms <= 50 over 1h", 30.0, 100, ObjectiveState.OK),
        ("p95_latency_ms <= 50 over 1h", 48.0, 100, ObjectiveState.AT_RISK),
        ("p95_latency_ms <= 50 over 1h", 50.5, 100, ObjectiveState.BREACHED),
        ("p95_latency_ms < 50 over 1h", 50.0, 100, ObjectiveState.BREACHED),
        ("drift_share <= 0 over 1d", 0.0, 100, ObjectiveState.OK),  # no margin around zero
        ("r2 >= -0.5 over 1d", -0.49, 100, ObjectiveState.AT_RISK),
        ("r2 >= -0.5 over 1d", -0.2, 100, ObjectiveState.OK),
        ("requests >= 100 over 1h", 0.0, 0, ObjectiveState.BREACHED),  # no traffic is a breach
    ],
)
def test_objective_state(
    text: str, value: float | None, samples: int, state: ObjectiveState
) -> None:
    assert objective_state(objective(text), value, samples) == state


def test_the_margin_of_an_objective_decides_when_it_is_at_risk() -> None:
    strict = objective("accuracy >= 0.9 over 7d", margin=0.0)
    wide = objective("accuracy >= 0.9 over 7d", margin=0.2)

    assert objective_state(strict, 0.9, 10) == ObjectiveState.OK
    assert objective_state(wide, 0.99, 10) == ObjectiveState.AT_RISK


# --- the spec -----------------------------------------------------------------------------


def test_parse_spec_reads_text_and_mapping_objectives_drift_reference_and_webhooks() -> None:
    drift = {"share_threshold": 0.4, "columns": {"age": {"method": "psi"}}}
    spec = parse_spec(
        {
            "objectives": [
                "accuracy >= 0.9 over 7d, min 500",
                {"metric": "p95_latency_ms", "threshold": 50, "window": "1h"},
                {
                    "metric": "f1",
                    "op": ">",
                    "threshold": 0.123456789,
                    "window": 3600,
                    "min_samples": 20,
                    "version": 3,
                },
            ],
            "drift": drift,
            "reference": "window:7d",
            "webhooks": [
                {"url": "https://hooks.example/a", "secret": SECRET},
                {"url": "http://127.0.0.1:9/b", "secret": SECRET, "model": "other"},
            ],
        }
    )

    assert spec.objectives == [
        ObjectiveSpec("accuracy >= 0.9 over 7d, min 500"),
        ObjectiveSpec("p95_latency_ms <= 50 over 1h"),  # op defaults to the good direction
        ObjectiveSpec("f1 > 0.123456789 over 1h, min 20", version=3),
    ]
    assert parse_objective(spec.objectives[2].text)["threshold"] == 0.123456789
    assert spec.drift == drift
    assert spec.reference == "window:7d"
    assert spec.webhooks == [
        WebhookSpec("https://hooks.example/a", SECRET),
        WebhookSpec("http://127.0.0.1:9/b", SECRET, model="other"),
    ]
    assert SECRET not in repr(spec.webhooks)


def test_an_empty_spec_declares_nothing() -> None:
    spec = parse_spec({})

    assert (spec.objectives, spec.drift, spec.reference, spec.webhooks) == ([], None, None, [])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"objective": [], "alerts": 1}, "spec has unknown keys: alerts, objective; allowed"),
        ({"objectives": "accuracy >= 0.9 over 7d"}, "'objectives' must be a list"),
        ({"objectives": ["ok >= 1 over 1d"]}, r"objectives\[0\]: .*unknown metric 'ok'"),
        ({"objectives": [7]}, r"objectives\[0\] must be text or a mapping"),
        (
            {"objectives": [{"metric": "f1", "threshold": 0.5, "window": "1d", "when": 1}]},
            r"objectives\[0\] has unknown keys: when; allowed: metric, op",
        ),
        ({"objectives": [{"metric": "f1", "window": "1d"}]}, r"objectives\[0\] needs 'threshold'"),
        (
            {"objectives": [{"metric": "f1", "op": "=", "threshold": 0.5, "window": "1d"}]},
            "op '=' is not one of",
        ),
        (
            {"objectives": [{"metric": "f1", "threshold": "0.5", "window": "1d"}]},
            "threshold '0.5' is not a number",
        ),
        (
            {"objectives": [{"metric": "f1", "threshold": 0.5, "window": "1d", "version": 0}]},
            "version must be a whole number of at least 1",
        ),
        (
            {"objectives": [{"metric": "f1", "threshold": 50, "window": "1d"}]},
            "f1 is a share between 0 and 1",
        ),
        ({"drift": ["ks"]}, "'drift' must be a mapping"),
        ({"reference": 3}, "'reference' must be text"),
        (
            {"webhooks": [{"url": "ftp://hooks.example/x", "secret": SECRET}]},
            r"webhooks\[0\]: webhook URL 'ftp://hooks.example/x' must start with http",
        ),
        (
            {"webhooks": [{"url": "file:///etc/passwd", "secret": SECRET}]},
            "must start with http:// or https://",
        ),
        ({"webhooks": [{"url": "https://h.example/x", "secret": "short"}]}, "at least 16"),
        ({"webhooks": [{"url": "https://h.example/x"}]}, "needs a 'url' and a 'secret'"),
        (
            {"webhooks": [{"url": "https://h.example/x", "secret": SECRET, "events": []}]},
            r"webhooks\[0\] has unknown keys: events",
        ),
        ([1, 2], "a monitoring spec must be a mapping"),
    ],
)
def test_parse_spec_refuses_bad_specs_naming_the_part(spec: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_spec(spec)
