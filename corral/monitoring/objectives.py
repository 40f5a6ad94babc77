"""Objectives: their grammar, their metrics, the state a measured value puts them in, and
the monitoring spec (the YAML file ``corral monitor apply`` reads).

An objective reads ``<metric> <op> <number> over <duration>[, min <int>]``, for example
``accuracy >= 0.9 over 7d, min 500`` or ``p95_latency_ms <= 50 over 1h``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from corral.errors import InvalidArgument
from corral.monitoring.alerts import check_webhook_secret, check_webhook_url
from corral.monitoring.entities import Objective, ObjectiveState
from corral.monitoring.windows import format_duration, parse_duration

__all__ = [
    "COMPARATORS",
    "METRICS",
    "MetricInfo",
    "MonitorSpec",
    "ObjectiveSpec",
    "WebhookSpec",
    "objective_state",
    "parse_objective",
    "parse_spec",
]


class MetricInfo(NamedTuple):
    """What a metric measures and which way is good."""

    higher_is_better: bool
    low: float | None = None  # the smallest value the metric can take, when bounded
    high: float | None = None


_SHARE = MetricInfo(True, 0.0, 1.0)
_COST = MetricInfo(False, 0.0, None)

#: The metrics an objective can name, and whether higher is better.
METRICS: dict[str, MetricInfo] = {
    "requests": MetricInfo(True, 0.0, None),
    "error_rate": MetricInfo(False, 0.0, 1.0),
    "p50_latency_ms": _COST,
    "p95_latency_ms": _COST,
    "p99_latency_ms": _COST,
    "accuracy": _SHARE,
    "precision": _SHARE,
    "recall": _SHARE,
    "f1": _SHARE,
    "roc_auc": _SHARE,
    "log_loss": _COST,
    "mae": _COST,
    "rmse": _COST,
    "r2": MetricInfo(True, None, 1.0),
    "estimated_accuracy": _SHARE,
    "estimated_f1": _SHARE,
    "estimated_roc_auc": _SHARE,
    "drift_share": MetricInfo(False, 0.0, 1.0),
}

COMPARATORS = (">=", ">", "<=", "<")

_EXAMPLE = "e.g. 'accuracy >= 0.9 over 7d, min 500'"
_CONDITION = re.compile(r"^\s*(?P<metric>[^\s<>=!]*)\s*(?P<op>[<>=!]+)\s*(?P<threshold>.*?)\s*$")
_OVER = re.compile(r"\s+over\s+", re.IGNORECASE)
_MIN = re.compile(r"^\s*min\s+(?P<count>\S+)\s*$", re.IGNORECASE)


def _unknown_metric(metric: str) -> str:
    close = difflib.get_close_matches(metric, list(METRICS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown metric '{metric}'{hint}; use one of: {', '.join(METRICS)}"


def _check_threshold(metric: str, threshold: float) -> str | None:
    """Why ``threshold`` cannot be a value of ``metric``, or None when it can."""
    info = METRICS[metric]
    if info.low == 0.0 and info.high == 1.0 and 1.0 < threshold <= 100.0:
        return f"{metric} is a share between 0 and 1: write {threshold / 100:g}, not {threshold:g}"
    if info.low is not None and threshold < info.low:
        return f"{metric} is never below {info.low:g}"
    if info.high is not None and threshold > info.high:
        return f"{metric} is never above {info.high:g}"
    return None


def parse_objective(text: str) -> dict[str, Any]:
    """The fields of an objective written as text.

    Returns ``{metric, comparator, threshold, window_seconds, min_samples}``; raises
    ``InvalidArgument`` naming the part that is wrong.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"an objective must be text, {_EXAMPLE}")

    def bad(why: str) -> InvalidArgument:
        return InvalidArgument(f"objective {text.strip()!r}: {why}")

    head, comma, tail = text.partition(",")
    min_samples = 1
    if comma:
        match = _MIN.match(tail)
        if match is None:
            raise bad(f"after the comma only 'min <count>' may follow, not {tail.strip()!r}")
        count = match.group("count")
        if not count.isdigit() or int(count) < 1:
            raise bad(f"minimum sample count {count!r} must be a whole number of at least 1")
        min_samples = int(count)
    parts = _OVER.split(head)
    if len(parts) != 2 or not parts[1].strip():
        raise bad(f"it needs a window: add 'over <duration>', {_EXAMPLE}")
    condition, window = parts
    match = _CONDITION.match(condition)
    if match is None or not match.group("op"):
        raise bad(f"it needs a comparator, one of {' '.join(COMPARATORS)}; {_EXAMPLE}")
    metric, op, number = match.group("metric", "op", "threshold")
    if not metric:
        raise bad(f"it needs a metric before {op!r}; use one of: {', '.join(METRICS)}")
    if metric not in METRICS:
        raise bad(_unknown_metric(metric))
    if op not in COMPARATORS:
        raise bad(f"comparator {op!r} is not one of {' '.join(COMPARATORS)}")
    try:
        threshold = float(number)
    except ValueError:
        raise bad(f"threshold {number!r} is not a number") from None
    if not math.isfinite(threshold):
        raise bad(f"threshold {number!r} must be a finite number")
    problem = _check_threshold(metric, threshold)
    if problem:
        raise bad(problem)
    window_seconds = parse_duration(window, what="window")
    return {
        "metric": metric,
        "comparator": op,
        "threshold": threshold,
        "window_seconds": window_seconds,
        "min_samples": min_samples,
    }


def _meets(value: float, comparator: str, threshold: float) -> bool:
    if comparator == ">=":
        return value >= threshold
    if comparator == ">":
        return value > threshold
    if comparator == "<=":
        return value <= threshold
    if comparator == "<":
        return value < threshold
    raise InvalidArgument(f"comparator {comparator!r} is not one of {' '.join(COMPARATORS)}")


def objective_state(objective: Objective, value: float | None, samples: int) -> ObjectiveState:
    """The state a measured ``value`` over ``samples`` rows puts ``objective`` in.

    ``no_data`` without a value or with fewer samples than the objective's minimum;
    ``breached`` when the comparison fails; ``at_risk`` when it holds by less than
    ``margin × |threshold|``; ``ok`` otherwise.
    """
    if value is None or math.isnan(value):
        return ObjectiveState.NO_DATA
    # The request count is its own sample count: no traffic must breach "requests >= 100",
    # not hide it as missing data.
    if objective.metric != "requests" and samples < objective.min_samples:
        return ObjectiveState.NO_DATA
    if not _meets(value, objective.comparator, objective.threshold):
        return ObjectiveState.BREACHED
    if abs(value - objective.threshold) < objective.margin * abs(objective.threshold):
        return ObjectiveState.AT_RISK
    return ObjectiveState.OK


# --- the monitoring spec ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectiveSpec:
    """One objective of a spec, as canonical text (``parse_objective`` reads it)."""

    text: str
    version: int | None = None


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    url: str
    secret: str = field(repr=False)
    model: str | None = None


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """A model's monitoring, as declared in a YAML file; ``drift`` is kept as given."""

    objectives: list[ObjectiveSpec] = field(default_factory=list)
    drift: dict[str, Any] | None = None
    reference: str | None = None
    webhooks: list[WebhookSpec] = field(default_factory=list)


_SPEC_KEYS = ("objectives", "drift", "reference", "webhooks")
_OBJECTIVE_KEYS = ("metric", "op", "threshold", "window", "min_samples", "version")
_WEBHOOK_KEYS = ("url", "secret", "model")


def _refuse_unknown(where: str, value: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise InvalidArgument(
            f"{where} has unknown keys: {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


def _number_text(value: float) -> str:
    """A threshold as text that reads back to the same float."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _whole(where: str, value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{where}: {what} must be a whole number of at least 1")
    return value


def _objective_from_mapping(where: str, item: Mapping[str, Any]) -> str:
    _refuse_unknown(where, item, _OBJECTIVE_KEYS)
    for key in ("metric", "threshold", "window"):
        if key not in item:
            raise InvalidArgument(f"{where} needs '{key}', e.g. {{metric: accuracy, op: '>=', "
                                  "threshold: 0.9, window: 7d, min_samples: 500}")  # fmt: skip
    metric = item["metric"]
    if not isinstance(metric, str) or metric not in METRICS:
        raise InvalidArgument(f"{where}: {_unknown_metric(str(metric))}")
    default_op = ">=" if METRICS[metric].higher_is_better else "<="
    op = item.get("op", default_op)
    if op not in COMPARATORS:
        raise InvalidArgument(f"{where}: op {op!r} is not one of {' '.join(COMPARATORS)}")
    threshold = item["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise InvalidArgument(f"{where}: threshold {threshold!r} is not a number")
    window = item["window"]
    if isinstance(window, int) and not isinstance(window, bool):
        window = f"{window}s"
    seconds = parse_duration(str(window), what=f"{where} window")
    count = _whole(where, item.get("min_samples", 1), "min_samples")
    text = f"{metric} {op} {_number_text(float(threshold))} over {format_duration(seconds)}"
    return text + (f", min {count}" if count > 1 else "")


def _objective_spec(index: int, item: Any) -> ObjectiveSpec:
    where = f"objectives[{index}]"
    version = None
    if isinstance(item, str):
        text = item
    elif isinstance(item, Mapping):
        text = _objective_from_mapping(where, item)
        if item.get("version") is not None:
            version = _whole(where, item["version"], "version")
    else:
        raise InvalidArgument(f"{where} must be text or a mapping, {_EXAMPLE}")
    try:
        parse_objective(text)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc.message}") from exc
    return ObjectiveSpec(text=text.strip(), version=version)


def _webhook_spec(index: int, item: Any) -> WebhookSpec:
    where = f"webhooks[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidArgument(f"{where} must be a mapping with 'url' and 'secret'")
    _refuse_unknown(where, item, _WEBHOOK_KEYS)
    url, secret, model = item.get("url"), item.get("secret"), item.get("model")
    if not isinstance(url, str) or not isinstance(secret, str):
        raise InvalidArgument(f"{where} needs a 'url' and a 'secret', both text")
    if model is not None and not isinstance(model, str):
        raise InvalidArgument(f"{where}: model must be a model's name")
    try:
        check_webhook_url(url)
        check_webhook_secret(secret)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc.message}") from exc
    return WebhookSpec(url=url, secret=secret, model=model)


def _list(spec: Mapping[str, Any], key: str) -> list[Any]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"'{key}' must be a list")
    return value


def parse_spec(spec: Mapping[str, Any]) -> MonitorSpec:
    """A monitoring spec from its YAML mapping; refuses unknown keys, naming them.

    ``{objectives: [text or {metric, op, threshold, window, min_samples, version}],
    drift: {...}, reference: str, webhooks: [{url, secret, model?}]}``, every key optional.
    """
    if not isinstance(spec, Mapping):
        raise InvalidArgument("a monitoring spec must be a mapping of " + ", ".join(_SPEC_KEYS))
    _refuse_unknown("the monitoring spec", spec, _SPEC_KEYS)
    drift = spec.get("drift")
    if drift is not None and not isinstance(drift, Mapping):
        raise InvalidArgument("'drift' must be a mapping of drift settings")
    reference = spec.get("reference")
    if reference is not None and (not isinstance(reference, str) or not reference.strip()):
        raise InvalidArgument("'reference' must be text, e.g. 'window:7d' or 'example'")
    return MonitorSpec(
        objectives=[_objective_spec(i, o) for i, o in enumerate(_list(spec, "objectives"))],
        drift=dict(drift) if drift is not None else None,
        reference=reference.strip() if reference is not None else None,
        webhooks=[_webhook_spec(i, w) for i, w in enumerate(_list(spec, "webhooks"))],
    )
