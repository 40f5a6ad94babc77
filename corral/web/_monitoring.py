"""What the monitoring pages show: a model's traffic, latency, performance, drift, objectives.

The page asks ``MonitoringService`` (``Corral.monitoring``) the same questions the API does
and turns the answers into charts (``corral.web.charts``) and table rows of formatted text,
so the template only lays them out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from corral.errors import CorralError, InvalidArgument
from corral.monitoring.windows import parse_duration
from corral.registry.entities import Model
from corral.web._drift import drift_view
from corral.web._serving import _examples
from corral.web._values import count, field_of, moment, percent, plain, to_number, when
from corral.web.charts import Chart, Series, Threshold, format_value, line_chart, time_labels

if TYPE_CHECKING:
    from corral.wiring import Corral

DEFAULT_WINDOW = "24h"
DEFAULT_BUCKET = "1h"
# Links above the charts; any other window/bucket pair works through the query string.
PRESETS = (("1h", "5m"), ("24h", "1h"), ("7d", "6h"), ("7d", "1d"), ("30d", "1d"))
MAX_BUCKETS = 750
MAX_WINDOW_SECONDS = 366 * 86400
HISTORY_LIMIT = 100
CLOSED_ALERTS_SHOWN = 20
STATES = ("ok", "at_risk", "breached", "no_data")
STATE_TEXT = {
    "ok": "ok",
    "at_risk": "at risk",
    "breached": "breached",
    "no_data": "no data",
}
LATENCY = ("p50_latency_ms", "p95_latency_ms", "p99_latency_ms")
# Realised metrics by task, each with its estimate (from predicted probabilities) if any.
CLASSIFICATION = (
    ("accuracy", "estimated_accuracy"),
    ("f1", "estimated_f1"),
    ("roc_auc", "estimated_roc_auc"),
    ("precision", None),
    ("recall", None),
    ("log_loss", None),
)
REGRESSION = (("mae", None), ("rmse", None), ("r2", None))
SHARES = frozenset({"accuracy", "f1", "roc_auc", "precision", "recall", "error_rate"})
METRIC_TITLES = {
    "accuracy": "Accuracy",
    "f1": "F1",
    "roc_auc": "ROC AUC",
    "precision": "Precision",
    "recall": "Recall",
    "log_loss": "Log loss",
    "mae": "Mean absolute error",
    "rmse": "Root mean squared error",
    "r2": "R²",
}


# -- the period ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Preset:
    label: str
    url: str
    current: bool


@dataclass(frozen=True, slots=True)
class Period:
    """The window the page shows, cut into buckets aligned on the bucket size (UTC)."""

    window: str
    bucket: str
    window_seconds: int
    bucket_seconds: int
    since: datetime
    until: datetime
    presets: tuple[Preset, ...]


def parse_period(
    window: str, bucket: str, *, now: datetime, extra: Mapping[str, str] | None = None
) -> Period:
    """The window and bucket of the query string, checked; ends at the current bucket's end."""
    window = (window or DEFAULT_WINDOW).replace(" ", "")
    bucket = (bucket or DEFAULT_BUCKET).replace(" ", "")
    window_seconds = parse_duration(window, what="window")
    bucket_seconds = parse_duration(bucket, what="bucket")
    if window_seconds > MAX_WINDOW_SECONDS:
        raise InvalidArgument(f"window {window!r} is longer than a year: ask for 366d at most")
    if bucket_seconds > window_seconds:
        raise InvalidArgument(
            f"bucket {bucket!r} is longer than the window {window!r}: pick a smaller bucket"
        )
    if window_seconds / bucket_seconds > MAX_BUCKETS:
        raise InvalidArgument(
            f"window {window!r} in buckets of {bucket!r} is {window_seconds // bucket_seconds:,} "
            f"buckets; at most {MAX_BUCKETS} are drawn: pick a larger bucket"
        )
    stamp = now.timestamp()
    end = math.floor(stamp / bucket_seconds) * bucket_seconds + bucket_seconds
    until = datetime.fromtimestamp(end, UTC)
    since = until - timedelta(seconds=window_seconds)
    presets = []
    for preset_window, preset_bucket in PRESETS:
        query = {**(extra or {}), "window": preset_window, "bucket": preset_bucket}
        presets.append(
            Preset(
                f"{preset_window} by {preset_bucket}",
                "?" + urlencode(query),
                (parse_duration(preset_window), parse_duration(preset_bucket))
                == (window_seconds, bucket_seconds),
            )
        )
    return Period(window, bucket, window_seconds, bucket_seconds, since, until, tuple(presets))


# -- views --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fact:
    label: str
    value: str
    testid: str


@dataclass(frozen=True, slots=True)
class ObjectiveView:
    id: int
    expression: str
    metric: str
    state: str  # one of STATES
    state_text: str
    value: str
    samples: str
    at: str
    detail: str
    history: Chart | None
    history_rows: tuple[tuple[str, str, str, str, str], ...]


@dataclass(frozen=True, slots=True)
class AlertView:
    id: int
    model: str
    state: str
    objective: str
    message: str
    value: str
    opened_at: str
    closed_at: str


def _state(value: Any) -> str:
    text = str(getattr(value, "value", value) or "no_data")
    return text if text in STATES else "no_data"


# -- the model's page ---------------------------------------------------------------------


def monitoring_context(
    corral: Corral,
    name: str,
    *,
    window: str,
    bucket: str,
    version: int | None,
    reference: str,
    base_url: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Everything the model's monitoring page shows (raises ``NotFound`` for a missing model)."""
    model = corral.registry.get_model(name)
    svc = corral.monitoring
    extra = {k: v for k, v in (("version", str(version or "")), ("reference", reference)) if v}
    period = parse_period(window, bucket, now=now or datetime.now(UTC), extra=extra)
    status = plain(svc.status(name))
    objectives = list(svc.list_objectives(name))
    performance = plain(
        svc.performance(
            name, since=period.since, until=period.until, bucket=period.bucket, version=version
        )
    )
    buckets = [plain(b) for b in performance.get("buckets", [])]
    thresholds = _thresholds(objectives)
    alerts = list(svc.list_alerts(model=name))
    return {
        "model": model,
        "period": period,
        "version": version,
        "reference": reference,
        "logged": moment(status.get("last_prediction_at")) is not None
        or any(to_number(b.get("requests")) for b in buckets)
        or bool(to_number(status.get("requests_24h"))),
        "facts": _facts(status),
        "predict_example": _predict_example(corral, name, base_url),
        "traffic": _traffic_charts(buckets, period, thresholds),
        "performance": _performance_charts(buckets, period, thresholds),
        "labelled": sum(int(to_number(b.get("labelled")) or 0) for b in buckets),
        "objectives": [_objective_view(svc, name, o) for o in objectives],
        "states": STATE_TEXT,
        "alerts": _alert_views(alerts, objectives),
        "drift": drift_view(svc, name, period.window, version, reference),
    }


def _facts(status: Mapping[str, Any]) -> list[Fact]:
    p95 = to_number(status.get("p95_latency_ms_24h"))
    facts = []
    if "last_prediction_at" in status:
        facts.append(
            Fact("Last prediction", when(status.get("last_prediction_at")), "last-prediction")
        )
    return [
        *facts,
        Fact("Requests, 24 h", count(status.get("requests_24h")), "requests-24h"),
        Fact("Error rate, 24 h", percent(status.get("error_rate_24h")), "error-rate-24h"),
        Fact("p95 latency, 24 h", "—" if p95 is None else f"{p95:.3g} ms", "p95-24h"),
        Fact("Open alerts", count(status.get("open_alerts", 0)), "open-alerts"),
    ]


def _predict_example(corral: Corral, name: str, base_url: str) -> str:
    """A curl line that sends the model one prediction (a generic one without an example)."""
    registry = corral.registry
    try:
        found = registry.resolve(name, "latest")
        examples = _examples(
            registry, registry.get_version(name, found.version), base_url, name, ""
        )
    except CorralError:
        examples = None
    if examples is not None:
        return examples.predict
    return (
        f"curl -s {base_url}/api/v1/models/{name}/predict \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        "  -d '{\"inputs\": [[1.0, 2.0]]}'"
    )


def _thresholds(objectives: Sequence[Any]) -> dict[str, list[Threshold]]:
    """Each objective's threshold under the metric it watches, to draw on that metric's chart."""
    found: dict[str, list[Threshold]] = {}
    for objective in objectives:
        metric = str(field_of(objective, "metric", ""))
        value = to_number(field_of(objective, "threshold"))
        if not metric or value is None:
            continue
        label = f"objective {field_of(objective, 'comparator', '')} {format_value(value)}"
        found.setdefault(metric.removeprefix("estimated_"), []).append(Threshold(value, label))
    return found


def _series(buckets: Sequence[Mapping[str, Any]], key: str) -> list[float | None]:
    return [to_number(b.get(key)) for b in buckets]


def _axis(buckets: Sequence[Mapping[str, Any]], period: Period) -> tuple[list[str], list[str]]:
    starts = [moment(b.get("start")) or period.since for b in buckets]
    return time_labels(starts, period.bucket_seconds)


def _traffic_charts(
    buckets: Sequence[Mapping[str, Any]], period: Period, thresholds: Mapping[str, list[Threshold]]
) -> list[Chart]:
    full, short = _axis(buckets, period)
    per = f"per {period.bucket}"
    charts = [
        line_chart(
            "chart-traffic",
            f"Traffic ({per})",
            full,
            [
                Series("requests", _series(buckets, "requests")),
                Series("errors", _series(buckets, "errors")),
                Series("labelled rows", _series(buckets, "labelled"), dashed=True),
            ],
            tick_labels=short,
            thresholds=thresholds.get("requests", []),
            description=f"Requests, failed requests and rows with feedback {per}.",
            include_zero=True,
        ),
        line_chart(
            "chart-latency",
            "Latency (ms)",
            full,
            [Series(key.split("_")[0], _series(buckets, key)) for key in LATENCY],
            tick_labels=short,
            thresholds=[t for key in LATENCY for t in thresholds.get(key, [])],
            description=f"Latency percentiles of whole requests {per}, in milliseconds.",
            unit="ms",
            include_zero=True,
        ),
    ]
    errors = _series(buckets, "error_rate")
    if any(errors) or "error_rate" in thresholds:
        charts.append(
            line_chart(
                "chart-error-rate",
                "Error rate",
                full,
                [Series("error rate", errors)],
                tick_labels=short,
                thresholds=thresholds.get("error_rate", []),
                description=f"Share of requests that failed {per}.",
                include_zero=True,
                limits=(0.0, 1.0),
            )
        )
    return charts


def _performance_charts(
    buckets: Sequence[Mapping[str, Any]], period: Period, thresholds: Mapping[str, list[Threshold]]
) -> list[Chart]:
    task = next((b.get("task") for b in buckets if b.get("task")), None)
    metrics = REGRESSION if task == "regression" else CLASSIFICATION
    full, short = _axis(buckets, period)
    charts = []
    for metric, estimate in metrics:
        realised = _series(buckets, metric)
        estimated = _series(buckets, estimate) if estimate else []
        watched = metric in thresholds
        if not any(v is not None for v in realised + estimated) and not watched:
            continue
        series = [Series(metric, realised)]
        if estimate:
            series.append(Series(estimate, estimated, dashed=True))
        title = METRIC_TITLES.get(metric, metric)
        words = "realised (from feedback)" + (" beside estimated" if estimate else "")
        charts.append(
            line_chart(
                f"chart-metric-{metric}",
                title,
                full,
                series,
                tick_labels=short,
                thresholds=thresholds.get(metric, []),
                description=f"{title} per {period.bucket}, {words}.",
                limits=(0.0, 1.0) if metric in SHARES else None,
            )
        )
    return charts


def _objective_view(svc: Any, model: str, objective: Any) -> ObjectiveView:
    objective_id = int(field_of(objective, "id"))
    expression = str(field_of(objective, "expression", "") or "")
    if not expression:
        expression = (
            f"{field_of(objective, 'metric')} {field_of(objective, 'comparator')} "
            f"{format_value(to_number(field_of(objective, 'threshold')))}"
        )
    state = _state(field_of(objective, "state"))
    history = sorted(
        svc.objective_history(model, objective_id, limit=HISTORY_LIMIT),
        key=lambda e: moment(field_of(e, "at")) or datetime.min.replace(tzinfo=UTC),
    )
    chart = None
    if history:
        threshold = to_number(field_of(objective, "threshold"))
        chart = line_chart(
            f"chart-objective-{objective_id}",
            f"History of {expression}",
            [when(field_of(e, "at")) for e in history],
            [
                Series(
                    str(field_of(objective, "metric", "value")),
                    [to_number(field_of(e, "value")) for e in history],
                )
            ],
            tick_labels=[
                (moment(field_of(e, "at")) or datetime.min).strftime("%m-%d %H:%M") for e in history
            ],
            thresholds=[Threshold(threshold, "threshold")] if threshold is not None else [],
            description=f"The value of each evaluation of {expression}, oldest first.",
            height=160,
        )
    rows = tuple(
        (
            when(field_of(e, "at")),
            _state(field_of(e, "state")),
            format_value(to_number(field_of(e, "value"))),
            count(field_of(e, "samples")),
            str(field_of(e, "detail", "") or ""),
        )
        for e in reversed(history)
    )
    return ObjectiveView(
        id=objective_id,
        expression=expression,
        metric=str(field_of(objective, "metric", "")),
        state=state,
        state_text=STATE_TEXT[state],
        value=format_value(to_number(field_of(objective, "value"))),
        samples=count(field_of(objective, "samples")),
        at=when(field_of(objective, "evaluated_at") or field_of(objective, "at")),
        detail=str(field_of(objective, "detail", "") or ""),
        history=chart,
        history_rows=rows,
    )


def _alert_cause(alert: Any, expressions: dict[int, str]) -> str:
    """What raised an alert: its objective's expression, or (no objective) its source."""
    source = str(field_of(alert, "source", "") or "")
    if source.startswith("signature:"):
        return f"signature check failed ({source.removeprefix('signature:')})"
    objective_id = int(field_of(alert, "objective_id"))
    return expressions.get(objective_id, "") or f"objective {objective_id} (deleted)"


def _alert_views(alerts: Sequence[Any], objectives: Sequence[Any]) -> list[AlertView]:
    expressions = {
        int(field_of(o, "id")): str(field_of(o, "expression", "") or "") for o in objectives
    }
    views = [
        AlertView(
            id=int(field_of(a, "id")),
            model=str(field_of(a, "model", "")),
            state=str(getattr(field_of(a, "state"), "value", field_of(a, "state"))),
            objective=_alert_cause(a, expressions),
            message=str(field_of(a, "message", "") or ""),
            value=format_value(to_number(field_of(a, "value"))),
            opened_at=when(field_of(a, "opened_at")),
            closed_at=when(field_of(a, "closed_at")),
        )
        for a in alerts
    ]
    opened = [v for v in views if v.state == "open"]
    closed = [v for v in views if v.state != "open"][:CLOSED_ALERTS_SHOWN]
    return opened + closed


# -- every model --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelHealth:
    name: str
    objectives: int
    counts: tuple[tuple[str, str, int], ...]  # (state, words, how many), non-zero only
    worst: str


def overview_context(corral: Corral, models: Sequence[Model]) -> dict[str, Any]:
    """Open alerts of every model, and each listed model's objective states."""
    svc = corral.monitoring
    alerts = list(svc.list_alerts(state="open"))
    objectives_by_id: dict[int, Any] = {}
    health = []
    for model in models:
        objectives = list(svc.list_objectives(model.name))
        objectives_by_id.update({int(field_of(o, "id")): o for o in objectives})
        states = [_state(field_of(o, "state")) for o in objectives]
        counts = tuple((s, STATE_TEXT[s], states.count(s)) for s in STATES if s in states)
        worst = next((s for s in ("breached", "at_risk", "no_data", "ok") if s in states), "")
        health.append(ModelHealth(model.name, len(objectives), counts, worst))
    for name in sorted({str(field_of(a, "model", "")) for a in alerts} - {m.name for m in models}):
        objectives_by_id.update({int(field_of(o, "id")): o for o in svc.list_objectives(name)})
    views = _alert_views(alerts, list(objectives_by_id.values()))
    return {"open_alerts": views, "health": health}
