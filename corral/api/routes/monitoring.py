"""Monitoring: status, performance, drift, feedback, objectives, alerts and webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from corral.api.deps import actor
from corral.api.encoding import json_response
from corral.api.errors import API_ERRORS
from corral.errors import InvalidArgument
from corral.monitoring.codec import plain
from corral.monitoring.service import MonitoringService
from corral.registry.values import MAX_NUMBER
from corral.serving.errors import TooLarge

router = APIRouter(prefix="/api/v1", responses=API_ERRORS)

# Feedback is parsed in memory: bounded well below a model upload.
MAX_FEEDBACK_BYTES = 256 * 1024**2
FEEDBACK_FORMATS = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}
FORMAT_NAMES = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl", "parquet": "parquet"}


class Unprocessable(InvalidArgument):
    """A body that is well-formed but says something invalid (an objective, a feedback line)."""

    code = "invalid_request"
    title = "Invalid request"


@contextmanager
def _unprocessable() -> Iterator[None]:
    """What the domain refuses in a body is a 422 (the message names the part or line)."""
    try:
        yield
    except (Unprocessable, TooLarge):
        raise
    except InvalidArgument as exc:
        raise Unprocessable(exc.message) from exc


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObjectiveCreate(_Body):
    objective: str = Field(max_length=1000, description="e.g. 'accuracy >= 0.9 over 7d, min 500'")
    version: int | None = Field(default=None, ge=1, le=MAX_NUMBER)


class WebhookCreate(_Body):
    url: str = Field(max_length=2048)
    secret: str = Field(max_length=1024)
    model: str | None = Field(default=None, max_length=10_000)


# Async on purpose, like corral.api.deps: a plain `def` would cost a thread hop per request.
async def monitoring(request: Request) -> MonitoringService:
    service: MonitoringService = request.app.state.corral.monitoring
    return service


def _zoned(moment: datetime | None) -> datetime | None:
    """A time without a zone is UTC (the prediction log's zone)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _reply(obj: Any, status: int = 200) -> Response:
    return json_response(plain(obj), status)


@router.get("/models/{name}/monitoring/status", tags=["monitoring"])
def monitoring_status(name: str, svc: MonitoringService = Depends(monitoring)) -> Response:
    return _reply(svc.status(name))


@router.get("/models/{name}/monitoring/performance", tags=["monitoring"])
def performance(
    name: str,
    since: datetime | None = Query(default=None, description="from (ISO 8601, zoned)"),
    until: datetime | None = Query(default=None, description="to (ISO 8601, zoned; default now)"),
    bucket: str = Query(default="1h", max_length=32, description="bucket size: 15m, 1h, 1d…"),
    version: int | None = Query(default=None, ge=1, le=MAX_NUMBER),
    svc: MonitoringService = Depends(monitoring),
) -> Response:
    since, until = _zoned(since), _zoned(until)
    report = svc.performance(name, since=since, until=until, bucket=bucket, version=version)
    return _reply(report)


@router.get("/models/{name}/monitoring/drift", tags=["monitoring"])
def drift(
    name: str,
    reference: str | None = Query(
        default=None, max_length=2048, description="example, window:<duration> or file:<url>"
    ),
    window: str = Query(default="1d", max_length=32, description="the current window"),
    version: int | None = Query(default=None, ge=1, le=MAX_NUMBER),
    svc: MonitoringService = Depends(monitoring),
) -> Response:
    return _reply(svc.drift(name, reference=reference, window=window, version=version))


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the feedback upload is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the feedback upload is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _feedback_format(content_type: str, fmt: str | None) -> str | None:
    """``csv``, ``jsonl`` or ``parquet`` for a raw upload; None for a JSON body."""
    if fmt is not None:
        if fmt.lower() not in FORMAT_NAMES:
            raise InvalidArgument(
                f"feedback format {fmt[:40]!r} is unknown: use csv, jsonl or parquet"
            )
        return FORMAT_NAMES[fmt.lower()]
    if content_type in ("", "application/json") or content_type.endswith("+json"):
        return None
    if content_type in FEEDBACK_FORMATS:
        return FEEDBACK_FORMATS[content_type]
    raise InvalidArgument(
        f"feedback of Content-Type {content_type[:100]!r} is not understood: send JSON, "
        "text/csv, application/x-ndjson or application/vnd.apache.parquet "
        "(or application/octet-stream with ?format=csv|jsonl|parquet)"
    )


def _records(raw: bytes) -> list[dict[str, Any]]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"the request body is not valid JSON ({exc})") from None
    items = [body] if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise Unprocessable(
            "feedback must be a JSON object {request_id, label, row?} or a list of them"
        )
    return items  # the service checks each item, naming it


@router.post("/models/{name}/feedback", tags=["monitoring"])
async def post_feedback(
    name: str,
    request: Request,
    fmt: str | None = Query(
        default=None, alias="format", max_length=40, description="csv, jsonl or parquet"
    ),
    svc: MonitoringService = Depends(monitoring),
) -> Response:
    """Ground-truth labels by request id: JSON records, or a CSV, JSON lines or Parquet upload."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    kind = _feedback_format(content_type, fmt)
    limit = min(request.app.state.corral.settings.max_upload_bytes, MAX_FEEDBACK_BYTES)
    raw = await _read_body(request, limit)
    records = _records(raw) if kind is None else []
    with _unprocessable():
        if kind is None:
            receipt = await run_in_threadpool(svc.record_feedback, name, records)
        else:
            receipt = await run_in_threadpool(svc.upload_feedback, name, raw, kind)
    return _reply(receipt)


@router.get("/models/{name}/objectives", tags=["monitoring"])
def list_objectives(name: str, svc: MonitoringService = Depends(monitoring)) -> Response:
    return _reply(svc.list_objectives(name))


@router.post("/models/{name}/objectives", status_code=201, tags=["monitoring"])
def create_objective(
    name: str,
    body: ObjectiveCreate,
    svc: MonitoringService = Depends(monitoring),
    who: str = Depends(actor),
) -> Response:
    with _unprocessable():
        objective = svc.create_objective(name, body.objective, version=body.version, actor=who)
    return _reply(objective, 201)


@router.delete("/models/{name}/objectives/{objective_id}", status_code=204, tags=["monitoring"])
def delete_objective(
    name: str,
    objective_id: int = Path(ge=1, le=MAX_NUMBER),
    svc: MonitoringService = Depends(monitoring),
    who: str = Depends(actor),
) -> Response:
    svc.delete_objective(name, objective_id, actor=who)
    return Response(status_code=204)


@router.get("/models/{name}/objectives/{objective_id}/history", tags=["monitoring"])
def objective_history(
    name: str,
    objective_id: int = Path(ge=1, le=MAX_NUMBER),
    limit: int = Query(default=100, ge=1, le=1000),
    svc: MonitoringService = Depends(monitoring),
) -> Response:
    return _reply(svc.objective_history(name, objective_id, limit=limit))


@router.put("/models/{name}/monitoring", tags=["monitoring"])
def apply_monitoring(
    name: str,
    spec: dict[str, Any] = Body(description="the monitoring YAML file's content, as JSON"),
    svc: MonitoringService = Depends(monitoring),
    who: str = Depends(actor),
) -> Response:
    """Replace a model's objectives (and drift settings, reference, webhooks) with a spec."""
    with _unprocessable():
        applied = svc.apply(name, spec, actor=who)
    return _reply(applied)


@router.post("/monitoring/evaluate", tags=["monitoring"])
def evaluate(
    model: str | None = Query(default=None, max_length=10_000, description="one model"),
    svc: MonitoringService = Depends(monitoring),
) -> Response:
    """Evaluate objectives now (one model's, or every model's); opens and closes alerts."""
    return _reply(svc.evaluate(model))


@router.get("/alerts", tags=["monitoring"])
def list_alerts(
    model: str | None = Query(default=None, max_length=10_000),
    state: str | None = Query(default=None, max_length=16, description="open or closed"),
    svc: MonitoringService = Depends(monitoring),
) -> Response:
    return _reply(svc.list_alerts(model=model, state=state))


@router.get("/alerts/{alert_id}/deliveries", tags=["monitoring"])
def alert_deliveries(
    alert_id: int = Path(ge=1, le=MAX_NUMBER), svc: MonitoringService = Depends(monitoring)
) -> Response:
    return _reply(svc.list_deliveries(alert_id))


@router.get("/webhooks", tags=["monitoring"])
def list_webhooks(
    model: str | None = Query(default=None, max_length=10_000, description="only this model's"),
    svc: MonitoringService = Depends(monitoring),
) -> Response:
    return _reply(svc.list_webhooks(model))


@router.post("/webhooks", status_code=201, tags=["monitoring"])
def create_webhook(
    body: WebhookCreate,
    svc: MonitoringService = Depends(monitoring),
    who: str = Depends(actor),
) -> Response:
    webhook = svc.create_webhook(body.url, body.secret, model=body.model, actor=who)
    return _reply(webhook, 201)


@router.get("/webhooks/deliveries", tags=["monitoring"])
def list_deliveries(
    alert_id: int | None = Query(
        default=None, ge=1, le=MAX_NUMBER, description="only this alert's deliveries"
    ),
    svc: MonitoringService = Depends(monitoring),
) -> Response:
    return _reply(svc.list_deliveries(alert_id))


@router.delete("/webhooks/{webhook_id}", status_code=204, tags=["monitoring"])
def delete_webhook(
    webhook_id: int = Path(ge=1, le=MAX_NUMBER),
    svc: MonitoringService = Depends(monitoring),
    who: str = Depends(actor),
) -> Response:
    svc.delete_webhook(webhook_id, actor=who)
    return Response(status_code=204)
