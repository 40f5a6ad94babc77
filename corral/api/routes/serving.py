"""Prediction endpoints: plain JSON, the Open Inference Protocol V2, and ``/metrics``.

The predict and infer routes are thin: ``corral.api.inference`` builds their replies (and
its ``FrontDoor`` answers them before FastAPI's routing); these routes document them in
OpenAPI and serve any request that reaches FastAPI.
Plain JSON errors are problem+json like the rest of the API; OIP errors use the spec's
``{"error": "..."}`` body.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from corral._version import __version__
from corral.api.errors import API_ERRORS, OIP_ERRORS
from corral.api.inference import (
    DUMP,
    JSON,
    Incoming,
    Reply,
    check_declared_size,
    oip_error,
    oip_infer,
    oip_route,
    plain_predict,
    too_large,
)
from corral.errors import CorralError, NotFound
from corral.serving.gateway import Gateway, Route
from corral.serving.inputs import OIP_DTYPES
from corral.serving.metrics import CONTENT_TYPE

router = APIRouter()
_JSON = JSON
_DUMP = DUMP

PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            _JSON: {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "inputs": {
                            "description": "Records (list of objects), columns (object of "
                            "lists) or a 2-D array, in the version's signature",
                            "anyOf": [
                                {"type": "array", "items": {}},
                                {"type": "object"},
                            ],
                        },
                        "version": {"type": "integer", "minimum": 1},
                        "alias": {"type": "string"},
                        "key": {"type": "string", "description": "Sticky key for canaries"},
                    },
                }
            }
        },
    }
}
INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            _JSON: {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name", "shape", "datatype", "data"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "shape": {"type": "array", "items": {"type": "integer"}},
                                    "datatype": {"type": "string", "enum": list(OIP_DTYPES)},
                                    "parameters": {"type": "object"},
                                    "data": {"type": "array", "items": {}},
                                },
                            },
                        },
                        "outputs": {
                            "type": "array",
                            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                        },
                    },
                }
            }
        },
    }
}


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.corral.gateway
    return gateway


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


async def _incoming(request: Request) -> Incoming:
    """The request as the hot path takes it (only reached when FrontDoor is bypassed)."""
    limit: int = request.app.state.corral.settings.max_request_bytes
    headers = {k: v for k, v in request.headers.items()}
    check_declared_size(headers, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return Incoming(b"".join(chunks), headers, dict(request.query_params), _request_id(request))


def _response(reply: Reply) -> Response:
    return Response(
        reply.body, status_code=reply.status, media_type=reply.media_type, headers=reply.headers
    )


# -- plain JSON -------------------------------------------------------------------------


@router.post(
    "/api/v1/models/{name}/predict",
    tags=["serving"],
    summary="Predict with a model (records, columns or a 2-D array)",
    openapi_extra=PREDICT_BODY,
    responses=API_ERRORS,
)
async def predict(name: str, request: Request) -> Response:
    return _response(await plain_predict(_gateway(request), name, await _incoming(request)))


# -- Open Inference Protocol V2 -------------------------------------------------------


def _oip_error(exc: CorralError) -> Response:
    return _response(oip_error(exc))


def _oip(content: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content, option=_DUMP), media_type=_JSON, headers=headers)


@router.get("/v2", tags=["inference"], summary="OIP server metadata")
async def server_metadata() -> Response:
    return _oip({"name": "corral", "version": __version__, "extensions": []})


@router.get("/v2/health/live", tags=["inference"], summary="OIP liveness")
async def live() -> Response:
    return _oip({"live": True})


@router.get("/v2/health/ready", tags=["inference"], summary="OIP readiness", responses=OIP_ERRORS)
async def ready(request: Request) -> Response:
    try:
        _gateway(request).registry.generation()  # the metadata store answers
    except Exception:
        return Response(orjson.dumps({"ready": False}), status_code=503, media_type=_JSON)
    return _oip({"ready": True})


def _metadata(route: Route, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "versions": [str(route.version)],
        "platform": route.flavor or "unknown",
        "inputs": [
            {
                "name": column.name,
                "datatype": _oip_datatype(column.dtype),
                "shape": column.shape,
            }
            for column in route.columns
        ],
        "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1]}],
        "parameters": {
            "version": route.version,
            "alias": route.alias,
            "input_checks": route.ranges.summary if route.ranges is not None else "none",
        },
    }


def _oip_datatype(dtype: str) -> str:
    return {
        "bool": "BOOL", "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
        "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
        "float16": "FP16", "float32": "FP32", "float64": "FP64",
    }.get(dtype, "BYTES")  # fmt: skip


async def _oip_route(request: Request, name: str, ref: str | None) -> Route:
    return await oip_route(_gateway(request), name, ref, request.headers)


async def _model_metadata(request: Request, name: str, ref: str | None) -> Response:
    try:
        return _oip(_metadata(await _oip_route(request, name, ref), name))
    except CorralError as exc:
        return _oip_error(exc)


async def _model_ready(request: Request, name: str, ref: str | None) -> Response:
    gateway = _gateway(request)
    try:
        route = await _oip_route(request, name, ref)
    except CorralError as exc:  # a bad name or version is the caller's mistake, not unreadiness
        return _oip_error(exc)
    try:
        await gateway.load(route)
    except NotFound as exc:
        return _oip_error(exc)
    except CorralError as exc:
        return Response(
            orjson.dumps({"name": name, "ready": False, "error": exc.message}),
            status_code=503,
            media_type=_JSON,
        )
    return _oip({"name": name, "ready": True})


async def _infer(request: Request, name: str, ref: str | None) -> Response:
    try:
        incoming = await _incoming(request)
    except CorralError as exc:
        return _oip_error(exc)
    return _response(await oip_infer(_gateway(request), name, ref, incoming))


# Each OIP model route also exists under /versions/{version}: a number, an alias or latest.


@router.get(
    "/v2/models/{name}",
    tags=["inference"],
    summary="OIP model metadata",
    responses=OIP_ERRORS,
)
@router.get(
    "/v2/models/{name}/versions/{version}",
    tags=["inference"],
    summary="OIP model metadata of a version (a number or an alias)",
    responses=OIP_ERRORS,
)
async def model_metadata(name: str, request: Request, version: str | None = None) -> Response:
    return await _model_metadata(request, name, version)


@router.get(
    "/v2/models/{name}/ready",
    tags=["inference"],
    summary="OIP model readiness",
    responses=OIP_ERRORS,
)
@router.get(
    "/v2/models/{name}/versions/{version}/ready",
    tags=["inference"],
    summary="OIP readiness of a version (a number or an alias)",
    responses=OIP_ERRORS,
)
async def model_ready(name: str, request: Request, version: str | None = None) -> Response:
    return await _model_ready(request, name, version)


@router.post(
    "/v2/models/{name}/infer",
    tags=["inference"],
    summary="OIP inference",
    openapi_extra=INFER_BODY,
    responses=OIP_ERRORS,
)
@router.post(
    "/v2/models/{name}/versions/{version}/infer",
    tags=["inference"],
    summary="OIP inference on a version (a number or an alias)",
    openapi_extra=INFER_BODY,
    responses=OIP_ERRORS,
)
async def infer(name: str, request: Request, version: str | None = None) -> Response:
    return await _infer(request, name, version)


# -- metrics ----------------------------------------------------------------------------


@router.get(
    "/metrics",
    tags=["monitoring"],
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
)
async def metrics(request: Request) -> Response:
    return Response(_gateway(request).metrics.exposition(), media_type=CONTENT_TYPE)
