"""``MonitoringService``: what the API, the SDK, the CLI and the pages ask of monitoring.

It joins the prediction log (``LogStore``), the SQL store of objectives and alerts
(``MonitoringStore``) and the registry, and owns the rules that need all three:
which reference a drift report compares with, how an objective's metric is measured
over its window, and when an evaluation opens or closes an alert.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from corral.access import Action, current, require
from corral.errors import InvalidArgument
from corral.monitoring.alerts import AlertKeeper, check_webhook_secret, check_webhook_url
from corral.monitoring.columns import ArrayColumns
from corral.monitoring.entities import (
    Alert,
    Delivery,
    Evaluation,
    FeedbackReceipt,
    Objective,
    ObjectiveState,
    Webhook,
)
from corral.monitoring.labels import label_text, label_value
from corral.monitoring.objectives import objective_state, parse_objective, parse_spec
from corral.monitoring.ports import ColumnSource, LogStore, MonitoringStore, Notifier
from corral.monitoring.windows import format_duration, parse_duration, utcnow
from corral.registry.permissions import require_owner_or, require_somewhere, visible
from corral.registry.service import RegistryService
from corral.registry.signature import EXAMPLE_FILE

if TYPE_CHECKING:
    # scipy.stats takes a second to import: drift and estimation load on first use.
    from corral.monitoring.drift import DriftReport
    from corral.monitoring.estimation import Calibrator

log = logging.getLogger("corral.monitoring")

__all__ = ["MonitoringService"]

MAX_EXAMPLE_BYTES = 64 << 20
# How far back labelled rows are looked for to calibrate estimated performance.
CALIBRATION_DAYS = 30
UNKNOWN_SAMPLE = 20
ESTIMATED = ("estimated_accuracy", "estimated_f1", "estimated_roc_auc")
TRAFFIC = ("requests", "error_rate", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms")


def _dates(value: datetime | None, default: datetime) -> datetime:
    return value if value is not None else default


class MonitoringService:
    """Prediction logs, feedback, performance, drift, objectives and alerts of models."""

    def __init__(
        self,
        registry: RegistryService,
        logs: LogStore,
        store: MonitoringStore,
        notifier: Notifier,
        *,
        open_file: Callable[[str], ColumnSource],
        parse_feedback: Callable[[bytes, str], list[dict[str, Any]]],
        cooldown_seconds: float = 3600.0,
        clock: Callable[[], datetime] = utcnow,
        check_url: Callable[[str], str] | None = None,
    ) -> None:
        # check_url: the outbound URL policy (corral.security.urls), given by the wiring.
        self.registry = registry
        self._check_url = check_url
        self.logs = logs
        self.store = store
        self.clock = clock
        self._open_file = open_file
        self._parse_feedback = parse_feedback
        self.alerts = AlertKeeper(store, notifier, cooldown_seconds=cooldown_seconds, clock=clock)

    # -- performance ----------------------------------------------------------------------

    def performance(
        self,
        model: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        bucket: str = "1h",
        version: int | None = None,
    ) -> dict[str, Any]:
        """Traffic, latency, realised and estimated performance per calendar bucket."""
        require(Action.READ, model)
        self.registry.get_model(model)
        size = parse_duration(bucket, what="bucket")
        end = _dates(until, self.clock())
        start = _dates(since, end - timedelta(seconds=size * 24))
        if start >= end:
            raise InvalidArgument(f"'since' ({start.isoformat()}) must be before 'until'")
        # Calendar buckets: aligned on multiples of the bucket size since the epoch.
        epoch = int(start.timestamp()) // size * size
        start = datetime.fromtimestamp(epoch, tz=end.tzinfo)
        if (end - start).total_seconds() / size > 2000:
            raise InvalidArgument(
                f"{bucket} buckets over that range would be more than 2000; use a larger bucket"
            )
        buckets = self.logs.buckets(model, start, end, size, version=version)
        self._add_estimates(model, buckets, start, end, size, version)
        return {
            "model": model,
            "version": version,
            "bucket": format_duration(size),
            "bucket_seconds": size,
            "since": start.isoformat(),
            "until": end.isoformat(),
            "buckets": buckets,
        }

    def _calibrator(
        self, model: str, end: datetime, version: int | None
    ) -> tuple[Calibrator | None, npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """A calibrator fitted on labelled rows of the last 30 days, and the scores it saw."""
        from corral.monitoring.estimation import Calibrator

        start = end - timedelta(days=CALIBRATION_DAYS)
        scores, stamps, labels = self.logs.scores(model, start, end, version=version)
        if scores.size == 0:
            return None, scores, stamps
        binary = _binary_labels(labels)
        known = ~np.isnan(binary)
        calibrator = Calibrator()
        calibrator.fit(scores[known], binary[known].astype(np.int64))
        return calibrator, scores, stamps

    def _add_estimates(
        self,
        model: str,
        buckets: list[dict[str, Any]],
        start: datetime,
        end: datetime,
        size: int,
        version: int | None,
    ) -> None:
        from corral.monitoring.estimation import estimate_buckets

        calibrator, scores, stamps = self._calibrator(model, end, version)
        for bucket in buckets:
            for name in ESTIMATED:
                bucket.setdefault(name, None)
        if calibrator is None:
            return
        lo = int(start.timestamp() * 1_000_000)
        inside = stamps >= lo
        edges = [lo + i * size * 1_000_000 for i in range(len(buckets) + 1)]
        estimates = estimate_buckets(calibrator, scores[inside], stamps[inside], edges)
        for bucket, estimate in zip(buckets, estimates, strict=False):
            bucket.update({k: estimate.get(k) for k in ESTIMATED})

    # -- feedback -------------------------------------------------------------------------

    def record_feedback(self, model: str, records: Sequence[Mapping[str, Any]]) -> FeedbackReceipt:
        """Store ground truth given as ``{request_id, label, row?}`` objects."""
        require(Action.PREDICT, model)
        self.registry.get_model(model)
        if isinstance(records, Mapping):
            records = [records]
        if not records:
            raise InvalidArgument("feedback needs at least one {request_id, label} object")
        now = self.clock()
        rows = []
        for index, record in enumerate(records):
            where = f"feedback item {index}"
            if not isinstance(record, Mapping):
                raise InvalidArgument(f"{where} must be an object with request_id and label")
            unknown = sorted(set(record) - {"request_id", "label", "row"})
            if unknown:
                raise InvalidArgument(f"{where} has unknown fields: {', '.join(unknown)}")
            request_id = record.get("request_id")
            if not isinstance(request_id, str) or not request_id:
                raise InvalidArgument(f"{where} needs a non-empty string 'request_id'")
            if "label" not in record or label_text(record["label"]) is None:
                raise InvalidArgument(f"{where} needs a 'label'")
            row = record.get("row", 0)
            if not isinstance(row, int) or isinstance(row, bool) or row < 0:
                raise InvalidArgument(f"{where}: 'row' must be a whole number >= 0")
            rows.append(
                {
                    "request_id": request_id,
                    "row": row,
                    "label_text": label_text(record["label"]),
                    "label_value": label_value(record["label"]),
                    "received_at": now,
                }
            )
        return self._store_feedback(model, rows)

    def upload_feedback(self, model: str, data: bytes, fmt: str) -> FeedbackReceipt:
        """Store ground truth from a CSV, JSON-lines or Parquet upload."""
        require(Action.PREDICT, model)
        self.registry.get_model(model)
        rows = self._parse_feedback(data, fmt)
        return self._store_feedback(model, rows)

    def _store_feedback(self, model: str, rows: list[dict[str, Any]]) -> FeedbackReceipt:
        ids = sorted({str(r["request_id"]) for r in rows})
        known = self.logs.known_request_ids(model, ids)
        self.logs.write_feedback(model, rows)
        unknown = [i for i in ids if i not in known]
        matched = sum(1 for r in rows if r["request_id"] in known)
        if unknown:
            log.info("feedback for %d unknown request ids of '%s'", len(unknown), model)
        return FeedbackReceipt(
            received=len(rows),
            matched=matched,
            unknown=len(rows) - matched,
            unknown_ids=unknown[:UNKNOWN_SAMPLE],
        )

    # -- drift ----------------------------------------------------------------------------

    def drift(
        self,
        model: str,
        *,
        reference: str | None = None,
        window: str = "1d",
        version: int | None = None,
        until: datetime | None = None,
    ) -> DriftReport:
        """Drift of the latest window of logged inputs against a reference."""
        require(Action.READ, model)
        from corral.monitoring.drift import DriftSettings, drift_report

        self.registry.get_model(model)
        size = parse_duration(window, what="window")
        end = _dates(until, self.clock())
        start = end - timedelta(seconds=size)
        settings = self.store.get_settings(model)
        drift_settings = DriftSettings.from_dict(settings.get("drift") or {})
        ref = reference or settings.get("reference") or f"window:{format_duration(size)}"
        current = self.logs.columns(model, start, end, version=version)
        baseline = self._reference(model, str(ref), start, version)
        return drift_report(baseline, current, drift_settings)

    def _reference(
        self, model: str, reference: str, before: datetime, version: int | None
    ) -> ColumnSource:
        kind, _, arg = reference.partition(":")
        if kind == "example":
            return self._example(model, int(arg) if arg else version)
        if kind == "window":
            size = parse_duration(arg or "1d", what="reference window")
            return self.logs.columns(
                model, before - timedelta(seconds=size), before, version=version
            )
        if kind == "file" and arg:
            return self._open_file(_store_path(arg))
        raise InvalidArgument(
            f"reference {reference!r} is not one of: 'example', 'example:<version>', "
            "'window:<duration>' (e.g. window:7d) or 'file:<path of a Parquet/CSV file under the "
            "artifact store root>'"
        )

    def _example(self, model: str, version: int | None) -> ColumnSource:
        found = self.registry.get_version(model, version if version is not None else "latest")
        entry = next((f for f in found.files if f.path == EXAMPLE_FILE), None)
        if entry is None:
            raise InvalidArgument(
                f"version {found.number} of '{model}' has no {EXAMPLE_FILE}; register it with "
                "an example, or use a 'window:' or 'file:' reference"
            )
        if entry.size > MAX_EXAMPLE_BYTES:
            raise InvalidArgument(f"{EXAMPLE_FILE} of version {found.number} is too large")
        data = b"".join(self.registry.stream_file(model, found.number, EXAMPLE_FILE))
        value = json.loads(data)
        if isinstance(value, Mapping):
            return ArrayColumns({str(k): list(v) for k, v in value.items()})
        if isinstance(value, list) and all(isinstance(r, Mapping) for r in value):
            return ArrayColumns.from_records(value)
        columns = [c.name for c in (found.signature.inputs if found.signature else [])]
        matrix = np.asarray(value, dtype=object)
        if matrix.ndim == 2 and len(columns) == matrix.shape[1]:
            return ArrayColumns({name: matrix[:, i] for i, name in enumerate(columns)})
        raise InvalidArgument(f"{EXAMPLE_FILE} of version {found.number} is not tabular")

    # -- objectives -----------------------------------------------------------------------

    def list_objectives(self, model: str) -> list[dict[str, Any]]:
        """Each objective of ``model`` with the state of its latest evaluation."""
        require(Action.READ, model)
        self.registry.get_model(model)
        return [self._objective_view(o) for o in self.store.list_objectives(model)]

    def _objective_view(self, objective: Objective) -> dict[str, Any]:
        latest = self.store.latest_evaluation(objective.id)
        view = asdict(objective)
        view["expression"] = objective.expression
        view["state"] = str(latest.state) if latest else str(ObjectiveState.NO_DATA)
        view["value"] = latest.value if latest else None
        view["samples"] = latest.samples if latest else 0
        view["evaluated_at"] = latest.at if latest else None
        return view

    def create_objective(
        self, model: str, expression: str, *, version: int | None = None, actor: str = ""
    ) -> Objective:
        """Add an objective to ``model`` (e.g. ``accuracy >= 0.9 over 7d, min 500``)."""
        self._maintain(model)
        self.registry.get_model(model)
        if version is not None:
            self.registry.get_version(model, version)
        fields = parse_objective(expression)
        objective = Objective(
            id=0, model=model, version=version, created_at=self.clock(), created_by=actor, **fields
        )
        return self.store.create_objective(objective)

    def delete_objective(self, model: str, objective_id: int, *, actor: str = "") -> None:
        self._maintain(model)
        self.registry.get_model(model)
        self._objective(model, objective_id)
        self.store.delete_objective(objective_id)
        log.info("objective %d of '%s' deleted by %s", objective_id, model, actor or "?")

    def _objective(self, model: str, objective_id: int) -> Objective:
        objective = self.store.get_objective(objective_id)
        if objective.model != model:
            from corral.errors import NotFound

            raise NotFound(f"model '{model}' has no objective {objective_id}")
        return objective

    def objective_history(
        self, model: str, objective_id: int, limit: int = 100
    ) -> list[Evaluation]:
        require(Action.READ, model)
        self.registry.get_model(model)
        self._objective(model, objective_id)
        return self.store.list_evaluations(objective_id, limit)

    def apply(self, model: str, spec: Mapping[str, Any], *, actor: str = "") -> dict[str, Any]:
        """Replace ``model``'s objectives and settings with a monitoring spec (the YAML file)."""
        self._maintain(model)
        self.registry.get_model(model)
        from corral.monitoring.drift import DriftSettings

        parsed = parse_spec(spec)
        if parsed.drift is not None:
            DriftSettings.from_dict(parsed.drift)  # refuse a bad spec before changing anything
        if parsed.reference is not None:
            kind = parsed.reference.partition(":")[0]
            if kind not in {"example", "window", "file"}:
                raise InvalidArgument(
                    f"reference {parsed.reference!r} must start with example, window: or file:"
                )
        checked = [(parse_objective(item.text), item.version) for item in parsed.objectives]
        for _, version in checked:
            if version is not None:
                self.registry.get_version(model, version)
        replacing = "objectives" in spec
        for old in self.store.list_objectives(model) if replacing else []:
            self.store.delete_objective(old.id)
        created = [
            self.store.create_objective(
                Objective(
                    id=0,
                    model=model,
                    version=version,
                    created_at=self.clock(),
                    created_by=actor,
                    **fields,
                )
            )
            for fields, version in checked
        ]
        if not replacing:
            created = self.store.list_objectives(model)
        settings = dict(self.store.get_settings(model))
        if parsed.drift is not None:
            settings["drift"] = dict(parsed.drift)
        if parsed.reference is not None:
            settings["reference"] = parsed.reference
        self.store.set_settings(model, settings)
        hooks = [
            self.create_webhook(h.url, h.secret, model=h.model or model, actor=actor)
            for h in parsed.webhooks
            if h.url not in {w.url for w in self.store.list_webhooks(model)}
        ]
        return {
            "model": model,
            "objectives": [self._objective_view(o) for o in created],
            "settings": settings,
            "webhooks": [asdict(w) for w in hooks],
        }

    # -- evaluation -----------------------------------------------------------------------

    def measure(
        self, model: str, metric: str, seconds: int, *, version: int | None = None
    ) -> tuple[float | None, int]:
        """``(value, samples)`` of one metric over the window of ``seconds`` ending now."""
        require(Action.READ, model)
        end = self.clock()
        start = end - timedelta(seconds=seconds)
        if metric == "drift_share":
            size = format_duration(seconds)
            report = self.drift(model, window=size, version=version, until=end)
            if report.current_rows == 0 or report.reference_rows == 0:
                return None, report.current_rows
            return report.drifted_share, report.current_rows
        if metric in ESTIMATED:
            from corral.monitoring.estimation import estimate_buckets

            calibrator, scores, stamps = self._calibrator(model, end, version)
            lo = int(start.timestamp() * 1_000_000)
            inside = stamps >= lo
            if calibrator is None or not inside.any():
                return None, int(inside.sum())
            hi = int(end.timestamp() * 1_000_000) + 1
            estimate = estimate_buckets(calibrator, scores[inside], stamps[inside], [lo, hi])
            return estimate[0].get(metric), int(inside.sum())
        buckets = self.logs.buckets(model, start, end, seconds, version=version)
        merged = _merge_buckets(buckets)
        samples = merged.get("requests", 0) if metric in TRAFFIC else merged.get("labelled", 0)
        value = merged.get(metric)
        return (float(value) if value is not None else None), int(samples or 0)

    def evaluate(self, model: str | None = None) -> list[Evaluation]:
        """Evaluate every objective (of ``model``, or all), record it, open/close alerts.

        One model's needs its maintainer; every model's, the maintainer role globally.
        """
        if model is not None:
            self._maintain(model)
            self.registry.get_model(model)
        else:
            require(Action.MAINTAIN)
        done = []
        for objective in self.store.list_objectives(model):
            try:
                value, samples = self.measure(
                    objective.model,
                    objective.metric,
                    objective.window_seconds,
                    version=objective.version,
                )
                detail = ""
            except InvalidArgument as exc:  # e.g. a reference that cannot be read
                value, samples, detail = None, 0, exc.message
            state = objective_state(objective, value, samples)
            evaluation = Evaluation(
                objective_id=objective.id,
                at=self.clock(),
                state=state,
                value=value,
                samples=samples,
                detail=detail,
            )
            self.store.add_evaluation(evaluation)
            self.alerts.observe(objective, evaluation)
            done.append(evaluation)
        return done

    # -- status, alerts and webhooks ------------------------------------------------------

    def status(self, model: str) -> dict[str, Any]:
        """The model's last day in one object: traffic, latency, objectives, open alerts."""
        require(Action.READ, model)
        self.registry.get_model(model)
        end = self.clock()
        day = 86400
        merged = _merge_buckets(self.logs.buckets(model, end - timedelta(seconds=day), end, day))
        return {
            "model": model,
            "requests_24h": merged.get("requests", 0),
            "error_rate_24h": merged.get("error_rate"),
            "p95_latency_ms_24h": merged.get("p95_latency_ms"),
            "labelled_24h": merged.get("labelled", 0),
            "accuracy_24h": merged.get("accuracy"),
            "objectives": self.list_objectives(model),
            "open_alerts": len(self.store.list_alerts(model, "open")),
        }

    def list_alerts(
        self, model: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[Alert]:
        """Alerts, newest first: of ``model``, or of every model the caller can see."""
        if model is not None:
            require(Action.READ, model)
        else:
            require_somewhere(Action.READ)
        if state not in (None, "open", "closed"):
            raise InvalidArgument(f"alert state must be 'open' or 'closed', not {state!r}")
        if model is not None:
            self.registry.get_model(model)
            return self.store.list_alerts(model, state, limit)
        principal = current()
        if principal.sees_everything:
            return self.store.list_alerts(None, state, limit)
        # One query per model the caller may see (few), merged newest first.
        names = principal.scope if principal.scope is not None else principal.model_roles
        found = [
            alert
            for name in sorted(n for n in names if principal.can_see(n))
            for alert in self.store.list_alerts(name, state, limit)
        ]
        return sorted(found, key=lambda alert: alert.id, reverse=True)[:limit]

    def raise_integrity_alert(self, model: str, version: int, message: str) -> Alert:
        """Open (or update) the alert of a version whose signature failed; webhooks hear it.

        The registry calls it (through the wiring) when it refuses a version, whoever asked:
        it checks no access. One alert per version stays open until an admin closes it.
        """
        return self.alerts.signal(model, f"signature:{model}/{version}", message)

    def close_alert(self, alert_id: int, *, actor: str = "") -> Alert:
        """Close an open alert by hand (admins only); its model's webhooks hear ``closed``."""
        require(Action.ADMIN)
        alert = self.store.get_alert(alert_id)
        objective: Objective | None = None
        if alert.objective_id:
            from corral.monitoring.errors import ObjectiveNotFound

            try:
                objective = self.store.get_objective(alert.objective_id)
            except ObjectiveNotFound:  # deleted since: the alert is history either way
                objective = None
        closed = self.alerts.close(alert, objective)
        log.info("alert %d of '%s' closed by %s", alert_id, alert.model, actor or "?")
        return closed

    def create_webhook(
        self, url: str, secret: str, *, model: str | None = None, actor: str = ""
    ) -> Webhook:
        """A webhook for ``model``'s alerts (its maintainers), or for every model's (admins)."""
        if model is not None:
            self._maintain(model)
            self.registry.get_model(model)
        else:
            require(Action.ADMIN)
        check_webhook_url(url)
        if self._check_url is not None:
            self._check_url(url)
        check_webhook_secret(secret)
        hook = Webhook(id=0, url=url, model=model, created_at=self.clock(), created_by=actor)
        return self.store.create_webhook(hook, secret)

    def list_webhooks(self, model: str | None = None) -> list[Webhook]:
        """The webhooks that hear of ``model``'s alerts, or every one the caller can see."""
        if model is not None:
            require(Action.READ, model)
            return self.store.list_webhooks(model)
        principal = require_somewhere(Action.READ)
        return [w for w in self.store.list_webhooks(None) if visible(principal, w.model)]

    def delete_webhook(self, webhook_id: int, *, actor: str = "") -> None:
        """Delete a webhook: a model's by its maintainers, a global one by admins."""
        hook = next((w for w in self.store.list_webhooks(None) if w.id == webhook_id), None)
        if hook is None:
            require_somewhere(Action.MAINTAIN)  # then the store says it does not exist
        elif hook.model is None:
            require(Action.ADMIN)
        else:
            self._maintain(hook.model)
        self.store.delete_webhook(webhook_id)

    def _maintain(self, model: str) -> None:
        require_owner_or(Action.MAINTAIN, model, lambda: self._owner(model))

    def _owner(self, model: str) -> str:
        found = self.registry.store.find_model(model)
        return found.owner if found is not None else ""

    def list_deliveries(self, alert_id: int | None = None, limit: int = 100) -> list[Delivery]:
        """Webhook delivery attempts, newest first (admins only: they name every endpoint)."""
        require(Action.ADMIN)
        if alert_id is not None:
            self.store.get_alert(alert_id)
        return self.store.list_deliveries(alert_id, limit)


def _store_path(path: str) -> str:
    """A reference file's path relative to the artifact store root, checked.

    References are read by the server, so they may only name files inside the store:
    never an absolute path, a URL, or a way out with '..'.
    """
    parts = path.replace("\\", "/").split("/")
    if "://" in path or path.startswith("/") or ".." in parts or not path.strip("/"):
        raise InvalidArgument(
            f"reference file {path!r} must be a relative path under the artifact store root, "
            "e.g. file:references/churn-2026-10.parquet"
        )
    return "/".join(p for p in parts if p not in ("", "."))


def _merge_buckets(buckets: list[dict[str, Any]]) -> dict[str, Any]:
    """One window's figures: the single bucket, or an empty one."""
    if not buckets:
        return {"requests": 0, "labelled": 0}
    if len(buckets) == 1:
        return buckets[0]
    # A window longer than one bucket (calendar alignment split it): keep what adds up.
    total = dict(buckets[-1])
    for key in ("requests", "rows", "errors", "labelled"):
        total[key] = sum(int(b.get(key) or 0) for b in buckets)
    return total


def _binary_labels(labels: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Labels as 1.0 (the larger of two classes), 0.0, or NaN when missing."""
    out = np.full(len(labels), np.nan)
    present = [label for label in labels if label is not None]
    classes = sorted(set(present), key=lambda v: (label_value(v) is None, label_value(v) or 0, v))
    if not classes:
        return out
    positive = classes[-1] if len(classes) > 1 else None
    for i, label in enumerate(labels):
        if label is not None:
            out[i] = 1.0 if positive is not None and label == positive else 0.0
    if positive is None:  # one class seen: numbers 0/1 say which it is
        value = label_value(classes[0])
        out[~np.isnan(out)] = 1.0 if value == 1.0 else 0.0
    return out
