"""Prediction endpoints: plain JSON, the Open Inference Protocol V2, and ``/metrics``.

Bodies are read and parsed here (orjson, size-limited) rather than by FastAPI's models:
this is the hot path, and every mistake in a body must come back as a precise 4xx.
Plain JSON errors are problem+json like the rest of the API; OIP errors use the spec's
``{"error": "..."}`` body.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from corral._version import __version__
from corral.api.encoding import deprecation_headers
from corral.api.errors import STATUS_BY_CODE
from corral.errors import CorralError, InvalidArgument, NotFound
from corral.registry.names import validate_name
from corral.serving.errors import InvalidInput, TooLarge
from corral.serving.gateway import Gateway, Route
from corral.serving.inputs import OIP_DTYPES, oip_matrix, oip_outputs, plain_outputs, request_matrix
from corral.serving.metrics import CONTENT_TYPE
from corral.serving.predictor import Prediction

router = APIRouter()
_JSON = "application/json"
_DUMP = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_MAX_REF = 128
_NO_BINARY = (
    "binary tensor data (Inference-Header-Content-Length) is not supported: send each "
    "tensor's values as JSON in its 'data' (tritonclient and kserve: "
    "set_data_from_numpy(array, binary_data=False))"
)

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


async def _body(request: Request, limit: int) -> Any:
    """The parsed JSON object of a request: 413 past ``limit`` bytes, 400 if not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    # Triton's binary tensor extension: a JSON header of this length, then raw bytes.
    json_length = request.headers.get("inference-header-content-length")
    if json_length is not None and json_length.strip() != str(len(raw)):
        raise InvalidArgument(_NO_BINARY)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"the request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object", field="body")
    return body


def _version_ref(value: Any, where: str) -> tuple[int | None, str | None]:
    """A version number or alias from a path segment, a query parameter or a body field."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(f"{where} must be a version number or an alias name", field=where)
    if isinstance(value, int) or (value.isascii() and value.isdigit()):  # not '²'
        number = int(value)
        if number < 1 or number > 2**62:
            raise InvalidInput(f"{where} must be a version number of at least 1", field=where)
        return number, None
    if value == "latest":
        return None, "latest"
    if len(value) > _MAX_REF:
        raise InvalidInput(f"{where} is longer than {_MAX_REF} characters", field=where)
    validate_name("alias", value)
    return None, value


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_REF or not value.isprintable():
        raise InvalidInput(f"{where} must be a printable string of at most {_MAX_REF} characters")
    return value


async def _route(
    request: Request, gateway: Gateway, name: str, version: int | None, alias: str | None
) -> Route:
    validate_name("model", name)
    consumer = _text(request.headers.get("x-corral-consumer"), "X-Corral-Consumer")
    return await gateway.aresolve(name, version=version, alias=alias, consumer=consumer)


def _record(
    gateway: Gateway,
    route: Route | None,
    prediction: Prediction | None,
    started: float,
    error: CorralError | None,
) -> None:
    metrics = gateway.metrics
    model = route.model if route else ""
    version = str(prediction.version if prediction else route.version if route else "")
    consumer = (route.consumer or "") if route else ""
    metrics.requests.labels(model, version, consumer).inc()
    metrics.latency.labels(model, version, consumer).observe(time.perf_counter() - started)
    if error is not None:
        metrics.errors.labels(model, version, consumer, error.code).inc()


def _headers(prediction: Prediction) -> dict[str, str]:
    headers = deprecation_headers(prediction.deprecation)
    headers["Corral-Model-Version"] = str(prediction.version)
    return headers


# -- plain JSON -------------------------------------------------------------------------


@router.post(
    "/api/v1/models/{name}/predict",
    tags=["serving"],
    summary="Predict with a model (records, columns or a 2-D array)",
    openapi_extra=PREDICT_BODY,
)
async def predict(name: str, request: Request) -> Response:
    gateway = _gateway(request)
    gateway.in_flight += 1
    try:
        return await _predict(gateway, name, request)
    finally:
        gateway.in_flight -= 1


async def _predict(gateway: Gateway, name: str, request: Request) -> Response:
    started = time.perf_counter()
    route: Route | None = None
    prediction: Prediction | None = None
    try:
        body = await _body(request, request.app.state.corral.settings.max_request_bytes)
        if "inputs" not in body:
            raise InvalidInput("the request body needs 'inputs' (records, columns or a 2-D array)")
        query = request.query_params
        number, _ = _version_ref(body.get("version", query.get("version")), "version")
        alias_number, alias = _version_ref(body.get("alias", query.get("alias")), "alias")
        if alias_number is not None:
            raise InvalidInput("alias must be an alias name; use 'version' for a number", "alias")
        if number is not None and alias is not None:
            raise InvalidInput("give a version or an alias, not both", field="version")
        key = _text(body.get("key", request.headers.get("x-corral-request-key")), "key")
        route = await _route(request, gateway, name, number, alias)
        matrix = request_matrix(body["inputs"], route.columns, allow_missing=route.allow_missing)
        prediction = await gateway.predict(route, matrix, key=key)
    except CorralError as exc:
        _record(gateway, route, prediction, started, exc)
        raise
    content = {
        "model": prediction.model,
        "version": prediction.version,
        "alias": prediction.alias,
        "consumer": prediction.consumer,
        "canary": prediction.canary,
        "request_id": _request_id(request),
        "predictions": plain_outputs(prediction.outputs),
    }
    if prediction.deprecation is not None:
        content["deprecation"] = prediction.deprecation.message
    _record(gateway, route, prediction, started, None)
    return Response(
        orjson.dumps(content, option=_DUMP), media_type=_JSON, headers=_headers(prediction)
    )


# -- Open Inference Protocol V2 -------------------------------------------------------


def _oip_error(exc: CorralError) -> Response:
    status = STATUS_BY_CODE.get(exc.code, 500)
    return Response(orjson.dumps({"error": exc.message}), status_code=status, media_type=_JSON)


def _oip(content: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content, option=_DUMP), media_type=_JSON, headers=headers)


@router.get("/v2", tags=["inference"], summary="OIP server metadata")
async def server_metadata() -> Response:
    return _oip({"name": "corral", "version": __version__, "extensions": []})


@router.get("/v2/health/live", tags=["inference"], summary="OIP liveness")
async def live() -> Response:
    return _oip({"live": True})


@router.get("/v2/health/ready", tags=["inference"], summary="OIP readiness")
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
        "parameters": {"version": route.version, "alias": route.alias},
    }


def _oip_datatype(dtype: str) -> str:
    return {
        "bool": "BOOL", "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
        "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
        "float16": "FP16", "float32": "FP32", "float64": "FP64",
    }.get(dtype, "BYTES")  # fmt: skip


async def _oip_route(request: Request, name: str, ref: str | None) -> Route:
    number, alias = _version_ref(ref, "version") if ref is not None else (None, None)
    return await _route(request, _gateway(request), name, number, alias)


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
    gateway = _gateway(request)
    gateway.in_flight += 1
    try:
        return await _infer_counted(gateway, request, name, ref)
    finally:
        gateway.in_flight -= 1


async def _infer_counted(
    gateway: Gateway, request: Request, name: str, ref: str | None
) -> Response:
    started = time.perf_counter()
    route: Route | None = None
    prediction: Prediction | None = None
    try:
        body = await _body(request, request.app.state.corral.settings.max_request_bytes)
        route = await _oip_route(request, name, ref)
        requested = _requested_outputs(body.get("outputs"))
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInput("'parameters' must be an object", field="parameters")
        key = _text(parameters.get("key", request.headers.get("x-corral-request-key")), "key")
        matrix = oip_matrix(body.get("inputs"), route.columns, allow_missing=route.allow_missing)
        prediction = await gateway.predict(route, matrix, key=key)
        outputs = oip_outputs(prediction.outputs, requested)
        if requested and not outputs:
            raise InvalidInput(
                f"this model has no output named {', '.join(requested)}; it has 'predict'",
                field="outputs",
            )
    except CorralError as exc:
        _record(gateway, route, prediction, started, exc)
        return _oip_error(exc)
    request_id = body.get("id") if isinstance(body.get("id"), str) else _request_id(request)
    content = {
        "model_name": name,
        "model_version": str(prediction.version),
        "id": request_id,
        "parameters": {"alias": prediction.alias, "canary": prediction.canary},
        "outputs": outputs,
    }
    _record(gateway, route, prediction, started, None)
    return _oip(content, _headers(prediction))


def _requested_outputs(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in value
    ):
        raise InvalidInput("'outputs' must be a list of objects with a 'name'", field="outputs")
    return [o["name"] for o in value]


# Each OIP model route also exists under /versions/{version}: a number, an alias or latest.


@router.get("/v2/models/{name}", tags=["inference"], summary="OIP model metadata")
@router.get(
    "/v2/models/{name}/versions/{version}",
    tags=["inference"],
    summary="OIP model metadata of a version (a number or an alias)",
)
async def model_metadata(name: str, request: Request, version: str | None = None) -> Response:
    return await _model_metadata(request, name, version)


@router.get("/v2/models/{name}/ready", tags=["inference"], summary="OIP model readiness")
@router.get(
    "/v2/models/{name}/versions/{version}/ready",
    tags=["inference"],
    summary="OIP readiness of a version (a number or an alias)",
)
async def model_ready(name: str, request: Request, version: str | None = None) -> Response:
    return await _model_ready(request, name, version)


@router.post(
    "/v2/models/{name}/infer", tags=["inference"], summary="OIP inference", openapi_extra=INFER_BODY
)
@router.post(
    "/v2/models/{name}/versions/{version}/infer",
    tags=["inference"],
    summary="OIP inference on a version (a number or an alias)",
    openapi_extra=INFER_BODY,
)
async def infer(name: str, request: Request, version: str | None = None) -> Response:
    return await _infer(request, name, version)


# -- metrics ----------------------------------------------------------------------------


@router.get("/metrics", tags=["monitoring"], summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(_gateway(request).metrics.exposition(), media_type=CONTENT_TYPE)
