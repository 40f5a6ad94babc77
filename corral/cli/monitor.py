"""``corral monitor``: status, performance, drift, feedback, objectives, alerts, webhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from corral.cli import _output as o
from corral.errors import InvalidArgument

JSON = typer.Option(False, "--json", help="Print machine-readable JSON.")

monitor_app = typer.Typer(
    no_args_is_help=True, help="Monitoring: traffic, performance, drift, objectives, alerts."
)
objectives_app = typer.Typer(no_args_is_help=True, help="A model's objectives.")
webhooks_app = typer.Typer(no_args_is_help=True, help="Where alerts are sent.")

# Columns of `monitor performance` beyond traffic, by the model's task.
_TASK_COLUMNS = {
    "classification": ["accuracy", "estimated_accuracy", "f1", "roc_auc"],
    "regression": ["mae", "rmse", "r2"],
}


def moment(option: str, value: str | None) -> datetime | None:
    """``7d`` (that long ago), or an ISO 8601 date or time (UTC unless it has a zone)."""
    if value is None:
        return None
    from corral.monitoring.windows import parse_duration

    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value, what=option))
    except InvalidArgument:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidArgument(
            f"{option} {value!r} is neither a duration (7d, 12h) nor an ISO 8601 date or time"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _when(value: str | None) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM:SS``."""
    return value[:19].replace("T", " ") if value else ""


def read_spec(path: Path) -> dict[str, Any]:
    """A monitoring YAML file: a mapping of objectives, drift, reference and webhooks."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read monitoring file '{path}': {exc.strerror}") from exc
    try:
        spec = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidArgument(f"'{path}' is not valid YAML{where}: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"'{path}' is not valid YAML: {exc}") from exc
    if not isinstance(spec, dict):
        raise InvalidArgument(
            f"'{path}' must be a YAML mapping with 'objectives' (and optionally 'drift', "
            "'reference', 'webhooks')"
        )
    return spec


def _objective_rows(objectives: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            item.get("id"),
            item.get("expression", ""),
            item.get("version") or "all",
            item.get("state") or "",
            _num(item.get("value")),
            _when(item.get("evaluated_at")),
        ]
        for item in objectives
    ]


_OBJECTIVE_COLUMNS = ["id", "objective", "version", "state", "value", "evaluated"]


def install(app: typer.Typer, state: Any) -> None:
    """Attach ``corral monitor`` to the root app."""
    from corral.cli.monitor_drift import drift_command

    @monitor_app.command("status")
    def status(name: str, as_json: bool = JSON) -> None:
        """A model's last 24 hours: traffic, errors, latency; its objectives and open alerts."""
        report = state.client().monitoring_status(name)
        if as_json:
            return o.emit_json(report)
        objectives = report.get("objectives", [])
        shown = {
            "last prediction": _when(report.get("last_prediction_at")) or None,
            "requests (24h)": report.get("requests_24h"),
            "error rate (24h)": _num(report.get("error_rate_24h")),
            "p95 latency ms (24h)": _num(report.get("p95_latency_ms_24h")),
            "labelled (24h)": report.get("labelled_24h"),
            "accuracy (24h)": _num(report.get("accuracy_24h")),
            "open alerts": report.get("open_alerts"),
        }
        o.fields(f"monitoring of {name}", {k: v for k, v in shown.items() if v not in (None, "")})
        if objectives:
            o.table("objectives", _OBJECTIVE_COLUMNS, _objective_rows(objectives))

    @monitor_app.command("performance")
    def performance(
        name: str,
        since: str | None = typer.Option(
            None, "--since", help="From: a duration ago (7d) or an ISO 8601 time."
        ),
        until: str | None = typer.Option(None, "--until", help="To (default now)."),
        bucket: str = typer.Option("1h", "--bucket", help="Bucket size: 15m, 1h, 1d…"),
        version: int | None = typer.Option(None, "--version", help="Only this version."),
        as_json: bool = JSON,
    ) -> None:
        """Traffic, latency and realised (and estimated) performance per time bucket."""
        report = state.client().performance(
            name,
            since=moment("--since", since),
            until=moment("--until", until),
            bucket=bucket,
            version=version,
        )
        if as_json:
            return o.emit_json(report)
        buckets = [b for b in report.get("buckets", []) if b.get("requests")]
        task = next((b["task"] for b in buckets if b.get("task")), None)
        extra = _TASK_COLUMNS.get(task or "", [])
        columns = ["start", "requests", "error_rate", "p95_latency_ms", "labelled", *extra]
        o.table(
            f"{name}: {len(buckets)} bucket(s) with traffic",
            columns,
            [[_when(b.get("start")), *(_num(b.get(c)) for c in columns[1:])] for b in buckets],
        )

    monitor_app.command("drift")(drift_command)

    @monitor_app.command("feedback")
    def feedback(
        name: str,
        file: Path = typer.Argument(..., help="A .csv, .jsonl/.ndjson, .parquet or .json file."),
        as_json: bool = JSON,
    ) -> None:
        """Send ground-truth labels (request_id, label[, row]) for logged predictions."""
        client = state.client()
        if as_json:
            return o.emit_json(client.upload_feedback(name, file))
        with o.err.status(f"sending {file.name}…"):
            receipt = client.upload_feedback(name, file)
        o.out.print(
            f"received {receipt['received']}, matched {receipt['matched']}, "
            f"unknown {receipt['unknown']}"
        )
        if receipt["unknown"]:
            sample = ", ".join(receipt.get("unknown_ids", [])[:5])
            o.err.print(
                f"warning: {receipt['unknown']} label(s) name request ids {name} never "
                f"answered (e.g. {sample}); they are kept in case the log arrives later",
                markup=False,
            )

    @monitor_app.command("alerts")
    def alerts(
        model: str | None = typer.Option(None, "--model", help="Only this model's alerts."),
        state_: str | None = typer.Option(None, "--state", help="open or closed."),
        as_json: bool = JSON,
    ) -> None:
        """Alerts opened by breached objectives, newest first."""
        found = state.client().list_alerts(model=model, state=state_)
        if as_json:
            return o.emit_json(found)
        o.table(
            f"{len(found)} alert(s)",
            ["id", "model", "objective", "state", "opened", "closed", "message"],
            [
                (
                    a["id"],
                    a["model"],
                    a["objective_id"],
                    a["state"],
                    _when(a.get("opened_at")),
                    _when(a.get("closed_at")),
                    a.get("message", ""),
                )
                for a in found
            ],
        )

    @monitor_app.command("evaluate")
    def evaluate(
        name: str | None = typer.Argument(None, help="One model (default: every model)."),
        as_json: bool = JSON,
    ) -> None:
        """Evaluate objectives now; breaches open alerts and notify webhooks."""
        evaluations = state.client().evaluate(name)
        if as_json:
            return o.emit_json(evaluations)
        o.table(
            f"{len(evaluations)} objective(s) evaluated",
            ["objective", "state", "value", "samples", "detail"],
            [
                (e["objective_id"], e["state"], _num(e.get("value")), e["samples"], e["detail"])
                for e in evaluations
            ],
        )

    @monitor_app.command("compact")
    def compact(
        name: str | None = typer.Argument(None, help="One model (default: every model)."),
        as_json: bool = JSON,
    ) -> None:
        """Merge each past day's prediction-log and feedback files into one (server side)."""
        from corral.store.metrics import ParquetLogStore

        settings = state.settings()
        options = dict(settings.artifact_options) or None
        counts = ParquetLogStore(settings.resolved_artifact_url, options).compact(name)
        if as_json:
            return o.emit_json(counts)
        o.fields("log compaction", counts)

    # -- objectives -------------------------------------------------------------------
    @objectives_app.command("list")
    def objectives_list(name: str, as_json: bool = JSON) -> None:
        """A model's objectives with their latest state."""
        found = state.client().list_objectives(name)
        if as_json:
            return o.emit_json(found)
        o.table(f"{len(found)} objective(s) of {name}", _OBJECTIVE_COLUMNS, _objective_rows(found))

    @objectives_app.command("add")
    def objectives_add(
        name: str,
        text: str = typer.Argument(..., help="e.g. 'accuracy >= 0.9 over 7d, min 500'"),
        version: int | None = typer.Option(None, "--version", help="Only this version."),
        as_json: bool = JSON,
    ) -> None:
        """Add an objective: METRIC OP NUMBER over DURATION[, min SAMPLES]."""
        objective = state.client().add_objective(name, text, version=version)
        if as_json:
            return o.emit_json(objective)
        o.out.print(f"objective {objective['id']} of {name}: {objective['expression']}")

    @objectives_app.command("delete")
    def objectives_delete(name: str, objective_id: int) -> None:
        """Remove an objective."""
        state.client().delete_objective(name, objective_id)
        o.out.print(f"deleted objective {objective_id} of {name}")

    @objectives_app.command("history")
    def objectives_history(
        name: str,
        objective_id: int,
        limit: int = typer.Option(100, "--limit", help="At most this many, newest first."),
        as_json: bool = JSON,
    ) -> None:
        """An objective's evaluations, newest first."""
        history = state.client().objective_history(name, objective_id, limit=limit)
        if as_json:
            return o.emit_json(history)
        o.table(
            f"objective {objective_id} of {name}: {len(history)} evaluation(s)",
            ["at", "state", "value", "samples", "detail"],
            [
                (_when(e["at"]), e["state"], _num(e.get("value")), e["samples"], e["detail"])
                for e in history
            ],
        )

    @objectives_app.command("apply")
    def objectives_apply(
        name: str,
        file: Path = typer.Argument(..., help="A YAML file: objectives, drift, reference…"),
        as_json: bool = JSON,
    ) -> None:
        """Replace a model's objectives (and drift settings) with those of a YAML file."""
        spec = read_spec(file)
        applied = state.client().apply_monitoring(name, spec)
        if as_json:
            return o.emit_json(applied)
        objectives = applied.get("objectives", [])
        o.out.print(f"applied {file.name} to {name}: {len(objectives)} objective(s)")
        if objectives:
            o.table("objectives", _OBJECTIVE_COLUMNS, _objective_rows(objectives))

    # -- webhooks ---------------------------------------------------------------------
    @webhooks_app.command("list")
    def webhooks_list(as_json: bool = JSON) -> None:
        """Every webhook (secrets are never shown)."""
        found = state.client().list_webhooks()
        if as_json:
            return o.emit_json(found)
        o.table(
            f"{len(found)} webhook(s)",
            ["id", "url", "model", "created", "by"],
            [
                (
                    w["id"],
                    w["url"],
                    w.get("model") or "all",
                    _when(w.get("created_at")),
                    w.get("created_by"),
                )
                for w in found
            ],
        )

    @webhooks_app.command("add")
    def webhooks_add(
        url: str,
        secret: str = typer.Option(
            ...,
            "--secret",
            envvar="CORRAL_WEBHOOK_SECRET",
            help="HMAC-SHA256 signing key (or CORRAL_WEBHOOK_SECRET, kept out of the history).",
        ),
        model: str | None = typer.Option(None, "--model", help="Only this model's alerts."),
        as_json: bool = JSON,
    ) -> None:
        """Send alerts to URL as signed HTTP POSTs."""
        webhook = state.client().add_webhook(url, secret, model=model)
        if as_json:
            return o.emit_json(webhook)
        scope = f"alerts of {model}" if model else "every alert"
        o.out.print(f"webhook {webhook['id']}: {scope} to {webhook['url']}")

    @webhooks_app.command("delete")
    def webhooks_delete(webhook_id: int) -> None:
        """Stop sending alerts to a webhook."""
        state.client().delete_webhook(webhook_id)
        o.out.print(f"deleted webhook {webhook_id}")

    @webhooks_app.command("deliveries")
    def webhooks_deliveries(
        alert: int | None = typer.Option(None, "--alert", help="Only this alert's deliveries."),
        as_json: bool = JSON,
    ) -> None:
        """Delivery attempts of alerts to webhooks, newest first."""
        found = state.client().list_deliveries(alert)
        if as_json:
            return o.emit_json(found)
        o.table(
            f"{len(found)} delivery attempt(s)",
            ["id", "alert", "webhook", "event", "attempt", "at", "ok", "status", "error"],
            [
                (
                    d["id"],
                    d["alert_id"],
                    d["webhook_id"],
                    d["event"],
                    d["attempt"],
                    _when(d.get("at")),
                    "yes" if d["succeeded"] else "no",
                    d.get("status_code"),
                    d.get("error", ""),
                )
                for d in found
            ],
        )

    monitor_app.add_typer(objectives_app, name="objectives")
    monitor_app.add_typer(webhooks_app, name="webhooks")
    app.add_typer(monitor_app, name="monitor")
