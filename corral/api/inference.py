"""The prediction hot path: plain JSON predict and OIP infer, shared by two doors.

``plain_predict`` and ``oip_infer`` take a request's bytes, headers and query and return
the status, body and headers of the reply. The FastAPI routes (``routes/serving.py``)
call them, which documents them in OpenAPI; ``FrontDoor``, the outermost ASGI layer,
calls them directly for ``POST`` requests to those paths, skipping FastAPI's routing and
middleware stack, which cost more than parsing, predicting and encoding together. Both
doors answer identically: the same functions build every reply.

``FrontDoor`` also gives every response an ``X-Request-Id``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corral.access import Principal, acting_as
from corral.api.auth import (
    AUTHORIZATION,
    CHALLENGE,
    COOKIE_HEADER,
    Authenticator,
    clear_cookie_header,
    is_oip,
    send_unauthenticated,
    sent_session,
    session_write_refusal,
)
from corral.api.encoding import deprecation_headers
from corral.api.errors import STATUS_BY_CODE, problem_body
from corral.errors import CorralError, InvalidArgument, Unauthenticated
from corral.registry.names import validate_name
from corral.security.admission import Gatekeeper, JsonDepth, RateLimited, check_json_depth
from corral.serving.errors import InvalidInput, TooLarge
from corral.serving.gateway import Gateway, Route
from corral.serving.inputs import oip_matrix, oip_outputs, plain_outputs, request_matrix
from corral.serving.predictor import Array, Prediction

log = logging.getLogger("corral.api")

JSON = "application/json"
DUMP = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
MAX_REF = 128
REQUEST_ID = b"x-request-id"
NO_BINARY = (
    "binary tensor data (Inference-Header-Content-Length) is not supported: send each "
    "tensor's values as JSON in its 'data' (tritonclient and kserve: "
    "set_data_from_numpy(array, binary_data=False))"
)
# The request headers the hot path reads (lower case, as ASGI gives them).
_WANTED = {
    b"content-length",
    b"content-type",
    b"x-corral-consumer",
    b"x-corral-request-key",
    b"inference-header-content-length",
}


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    media_type: str = JSON


@dataclass(frozen=True, slots=True)
class Incoming:
    """What the hot path needs of a request."""

    raw: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str]
    request_id: str
    # Counts a routed request's rows against the model's and the caller's limits (FrontDoor).
    charge: Callable[[Route, int], Awaitable[None]] | None = None


def check_declared_size(headers: Mapping[str, str], limit: int) -> None:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is {declared} bytes; the limit is {limit} bytes")


def too_large(limit: int) -> TooLarge:
    return TooLarge(f"the request body is over the limit of {limit} bytes")


def parse_body(incoming: Incoming) -> dict[str, Any]:
    """The request's JSON object: 400 if not JSON, 422 if not an object."""
    # Triton's binary tensor extension: a JSON header of this length, then raw bytes.
    json_length = incoming.headers.get("inference-header-content-length")
    if json_length is not None and json_length.strip() != str(len(incoming.raw)):
        raise InvalidArgument(NO_BINARY)
    try:
        body = orjson.loads(incoming.raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"the request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object", field="body")
    return body


def version_ref(value: Any, where: str) -> tuple[int | None, str | None]:
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
    if len(value) > MAX_REF:
        raise InvalidInput(f"{where} is longer than {MAX_REF} characters", field=where)
    validate_name("alias", value)
    return None, value


def text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_REF or not value.isprintable():
        raise InvalidInput(f"{where} must be a printable string of at most {MAX_REF} characters")
    return value


async def route_for(
    gateway: Gateway,
    name: str,
    headers: Mapping[str, str],
    version: int | None,
    alias: str | None,
) -> Route:
    validate_name("model", name)
    consumer = text(headers.get("x-corral-consumer"), "X-Corral-Consumer")
    return await gateway.aresolve(name, version=version, alias=alias, consumer=consumer)


async def oip_route(
    gateway: Gateway, name: str, ref: str | None, headers: Mapping[str, str]
) -> Route:
    number, alias = version_ref(ref, "version") if ref is not None else (None, None)
    return await route_for(gateway, name, headers, number, alias)


def _record(
    gateway: Gateway,
    route: Route | None,
    prediction: Prediction | None,
    started: float,
    error: CorralError | None,
    request_id: str,
    matrix: Array | None,
) -> None:
    metrics = gateway.metrics
    model = route.model if route else ""
    version = str(prediction.version if prediction else route.version if route else "")
    consumer = (route.consumer or "") if route else ""
    seconds = time.perf_counter() - started
    metrics.requests.labels(model, version, consumer).inc()
    metrics.latency.labels(model, version, consumer).observe(seconds)
    if error is not None:
        metrics.errors.labels(model, version, consumer, error.code).inc()
    if route is not None and gateway.recorder is not None:
        gateway.log_request(
            route, request_id, seconds, matrix=matrix, prediction=prediction, error=error
        )


def answer_headers(prediction: Prediction) -> dict[str, str]:
    headers = deprecation_headers(prediction.deprecation)
    headers["Corral-Model-Version"] = str(prediction.version)
    if prediction.out_of_range is not None:  # only when the inputs were range-checked
        headers["X-Corral-Out-Of-Range"] = str(prediction.out_of_range.count)
    return headers


def _challenge(status: int) -> dict[str, str]:
    return {"WWW-Authenticate": CHALLENGE} if status == 401 else {}


def _error_headers(exc: CorralError, status: int) -> dict[str, str]:
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after)}
    return _challenge(status)


def plain_error(exc: CorralError) -> Reply:
    status = STATUS_BY_CODE.get(exc.code, 500)
    body = problem_body(status, exc.title, exc.message, exc.code)
    return Reply(status, body, _error_headers(exc, status), PROBLEM)


def oip_error(exc: CorralError) -> Reply:
    status = STATUS_BY_CODE.get(exc.code, 500)
    return Reply(status, orjson.dumps({"error": exc.message}), _error_headers(exc, status))


PROBLEM = "application/problem+json"


async def plain_predict(gateway: Gateway, name: str, incoming: Incoming) -> Reply:
    """``POST /api/v1/models/{name}/predict``; raises ``CorralError`` for the caller's mistakes."""
    started = time.perf_counter()
    route: Route | None = None
    prediction: Prediction | None = None
    matrix: Array | None = None
    gateway.in_flight += 1
    try:
        body = parse_body(incoming)
        if "inputs" not in body:
            raise InvalidInput("the request body needs 'inputs' (records, columns or a 2-D array)")
        query = incoming.query
        number, _ = version_ref(body.get("version", query.get("version")), "version")
        alias_number, alias = version_ref(body.get("alias", query.get("alias")), "alias")
        if alias_number is not None:
            raise InvalidInput("alias must be an alias name; use 'version' for a number", "alias")
        if number is not None and alias is not None:
            raise InvalidInput("give a version or an alias, not both", field="version")
        key = text(body.get("key", incoming.headers.get("x-corral-request-key")), "key")
        route = await route_for(gateway, name, incoming.headers, number, alias)
        matrix = request_matrix(
            body["inputs"], route.columns, allow_missing=route.allow_missing, from_json=True
        )
        if incoming.charge is not None:
            await incoming.charge(route, len(matrix))
        prediction = await gateway.predict(route, matrix, key=key)
    except CorralError as exc:
        _record(gateway, route, prediction, started, exc, incoming.request_id, matrix)
        raise
    finally:
        gateway.in_flight -= 1
    content = {
        "model": prediction.model,
        "version": prediction.version,
        "alias": prediction.alias,
        "consumer": prediction.consumer,
        "canary": prediction.canary,
        "request_id": incoming.request_id,
        "predictions": plain_outputs(prediction.outputs),
    }
    if prediction.deprecation is not None:
        content["deprecation"] = prediction.deprecation.message
    if prediction.out_of_range is not None and prediction.out_of_range.count:
        content["out_of_range"] = prediction.out_of_range.to_dict()
    _record(gateway, route, prediction, started, None, incoming.request_id, matrix)
    return Reply(200, orjson.dumps(content, option=DUMP), answer_headers(prediction))


def _requested_outputs(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in value
    ):
        raise InvalidInput("'outputs' must be a list of objects with a 'name'", field="outputs")
    return [o["name"] for o in value]


async def oip_infer(gateway: Gateway, name: str, ref: str | None, incoming: Incoming) -> Reply:
    """``POST /v2/models/{name}[/versions/{ref}]/infer``; errors as OIP ``{"error": …}``."""
    started = time.perf_counter()
    route: Route | None = None
    prediction: Prediction | None = None
    matrix: Array | None = None
    gateway.in_flight += 1
    try:
        body = parse_body(incoming)
        route = await oip_route(gateway, name, ref, incoming.headers)
        requested = _requested_outputs(body.get("outputs"))
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInput("'parameters' must be an object", field="parameters")
        key = text(parameters.get("key", incoming.headers.get("x-corral-request-key")), "key")
        matrix = oip_matrix(body.get("inputs"), route.columns, allow_missing=route.allow_missing)
        if incoming.charge is not None:
            await incoming.charge(route, len(matrix))
        prediction = await gateway.predict(route, matrix, key=key)
        outputs = oip_outputs(prediction.outputs, requested)
        if requested and not outputs:
            raise InvalidInput(
                f"this model has no output named {', '.join(requested)}; it has 'predict'",
                field="outputs",
            )
    except CorralError as exc:
        _record(gateway, route, prediction, started, exc, incoming.request_id, matrix)
        return oip_error(exc)
    finally:
        gateway.in_flight -= 1
    request_id = body.get("id") if isinstance(body.get("id"), str) else incoming.request_id
    content = {
        "model_name": name,
        "model_version": str(prediction.version),
        "id": request_id,
        "parameters": _oip_parameters(prediction),
        "outputs": outputs,
    }
    _record(gateway, route, prediction, started, None, str(request_id), matrix)
    return Reply(200, orjson.dumps(content, option=DUMP), answer_headers(prediction))


def _oip_parameters(prediction: Prediction) -> dict[str, Any]:
    parameters: dict[str, Any] = {"alias": prediction.alias, "canary": prediction.canary}
    flagged = prediction.out_of_range
    if flagged is not None:  # OIP parameter values are scalars: details go as JSON text
        parameters["out_of_range_rows"] = flagged.count
        if flagged.count:
            parameters["out_of_range"] = orjson.dumps(flagged.to_dict()).decode()
    return parameters


# -- the front door -----------------------------------------------------------------------


def _hot_path(path: str) -> tuple[str, str | None, bool] | None:
    """(model, version ref, is OIP) for the two prediction paths, else None."""
    parts = path.split("/")
    # /api/v1/models/{name}/predict → ['', 'api', 'v1', 'models', name, 'predict']
    if len(parts) == 6 and parts[1:4] == ["api", "v1", "models"] and parts[5] == "predict":
        return parts[4], None, False
    # /v2/models/{name}/infer, /v2/models/{name}/versions/{ref}/infer
    if len(parts) >= 5 and parts[1] == "v2" and parts[2] == "models" and parts[-1] == "infer":
        if len(parts) == 5:
            return parts[3], None, True
        if len(parts) == 7 and parts[4] == "versions":
            return parts[3], parts[5], True
    return None


# Request ids: a random per-process prefix and a counter (unique, and cheaper than uuid4).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def _incoming_id(value: bytes) -> str | None:
    candidate = value.decode("latin-1")
    if 0 < len(candidate) <= MAX_REF and candidate.isascii() and candidate.isprintable():
        return candidate
    return None


NOSNIFF = b"x-content-type-options"
CSP = b"content-security-policy"
# HTML without a policy of its own (the API docs, starlette's error pages): Swagger UI and
# ReDoc come from this server (corral.api.docs), but start with an inline script and style,
# and ReDoc runs a worker from a blob.
_DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; worker-src 'self' blob:"
)
_HTML_CSP = b"default-src 'self'"


def _safe_headers(headers: list[tuple[bytes, bytes]], path: str) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``X-Content-Type-Options`` always and a CSP on any HTML reply."""
    names = {name.lower() for name, _ in headers}
    if NOSNIFF not in names:
        headers.append((NOSNIFF, b"nosniff"))
    if CSP not in names and any(
        name.lower() == b"content-type" and value.startswith(b"text/html")
        for name, value in headers
    ):
        docs = path.startswith(("/docs", "/redoc"))
        headers.append((CSP, _DOCS_CSP if docs else _HTML_CSP))
    return headers


# Probes, scrapers and static files are never rate limited.
_UNCOUNTED = frozenset({"/v2/health/live", "/v2/health/ready", "/api/v1/health", "/metrics"})


def _counted(path: str) -> bool:
    return path not in _UNCOUNTED and not path.startswith("/static/")


def _json_body(scope: Scope, headers: Mapping[str, str]) -> bool:
    return scope["method"] in ("POST", "PUT", "PATCH") and "json" in headers.get("content-type", "")


def _depth_checked(receive: Receive, limit: int) -> Receive:
    """``receive``, refusing with 400 a JSON body nested past ``limit`` as it streams in."""
    depth = JsonDepth(limit)

    async def checked() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            try:
                depth.feed(message.get("body", b""), last=not message.get("more_body", False))
            except InvalidArgument as exc:
                # FastAPI passes an HTTPException raised while reading a body on unchanged.
                raise HTTPException(400, exc.message) from None
        return message

    return checked


def _charger(keeper: Gatekeeper, principal: Principal) -> Callable[[Route, int], Awaitable[None]]:
    async def charge(route: Route, rows: int) -> None:
        limits = route.deployment
        await keeper.charge(
            principal,
            route.model,
            route.alias,
            rows,
            requests_per_second=limits.requests_per_second,
            rows_per_day=limits.rows_per_day,
        )

    return charge


async def _send_reply(send: Send, reply: Reply, raw_id: bytes) -> None:
    response_headers = [
        (b"content-type", reply.media_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
        (REQUEST_ID, raw_id),
        (NOSNIFF, b"nosniff"),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()),
    ]
    await send({"type": "http.response.start", "status": reply.status, "headers": response_headers})
    await send({"type": "http.response.body", "body": reply.body})


class FrontDoor:
    """The outermost ASGI layer: request ids, principals and rate limits; fast predictions.

    Predictions are answered here directly, each within its tier's share of the slots.
    """

    def __init__(
        self,
        app: ASGIApp,
        gateway: Any,
        max_request_bytes: int,
        authenticator: Authenticator,
        gatekeeper: Gatekeeper | None = None,
        max_json_depth: int = 0,
    ) -> None:
        self.app = app
        self._gateway = gateway  # a callable: the Corral's gateway is built lazily
        self._limit = max_request_bytes
        self._auth = authenticator
        self._gatekeeper = gatekeeper  # None: no rate limits, quotas or tiers
        self._depth = max_json_depth  # 0: JSON nesting is not checked

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id: str | None = None
        headers: dict[str, str] = {}
        authorization: bytes | None = None
        cookie: bytes | None = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID:
                request_id = _incoming_id(value)
            elif name in _WANTED:
                headers[name.decode("latin-1")] = value.decode("latin-1")
            elif name == AUTHORIZATION:
                authorization = value
            elif name == COOKIE_HEADER:
                cookie = value if cookie is None else cookie + b"; " + value
        if request_id is None:
            request_id = f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"
        scope.setdefault("state", {})["request_id"] = request_id
        raw_id = request_id.encode("latin-1")
        try:
            resolved = self._auth.resolve(scope["path"], authorization, cookie)
        except Unauthenticated as exc:
            extra = [(REQUEST_ID, raw_id)]
            stale = sent_session(authorization, cookie)
            await send_unauthenticated(send, exc, scope["path"], extra, clear_cookie=stale)
            return
        scope["state"]["principal"] = resolved.principal
        refused = session_write_refusal(
            scope["method"], scope["path"], authorization, resolved.principal
        )
        if refused is not None:
            render = oip_error if is_oip(scope["path"]) else plain_error
            await _send_reply(send, render(refused), raw_id)
            return
        with acting_as(resolved.principal):
            if self._gatekeeper is not None and _counted(scope["path"]):
                client = scope.get("client")
                try:
                    await self._gatekeeper.check_request(
                        resolved.principal, client[0] if client else None
                    )
                except CorralError as exc:  # RateLimited; or a token's limit that is no limit
                    render = oip_error if is_oip(scope["path"]) else plain_error
                    await _send_reply(send, render(exc), raw_id)
                    return
            hot = _hot_path(scope["path"]) if scope["method"] == "POST" else None
            if hot is not None:
                await self._predict(scope, receive, send, hot, headers, request_id, raw_id)
                return

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    extra = [(REQUEST_ID, raw_id)]
                    if resolved.clear_cookie:
                        extra.append(clear_cookie_header())
                    message["headers"] = _safe_headers(
                        [*message.get("headers", ()), *extra], scope["path"]
                    )
                await send(message)

            if self._depth and _json_body(scope, headers):
                receive = _depth_checked(receive, self._depth)
            await self.app(scope, receive, send_with_id)

    async def _predict(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        hot: tuple[str, str | None, bool],
        headers: dict[str, str],
        request_id: str,
        raw_id: bytes,
    ) -> None:
        name, ref, oip = hot
        render = oip_error if oip else plain_error
        principal = scope["state"]["principal"]
        keeper = self._gatekeeper
        try:
            # Under overload a request is refused before its body is read.
            with keeper.slot(principal) if keeper is not None else contextlib.nullcontext():
                raw = await self._read(receive, headers)
                if self._depth:
                    check_json_depth(raw, self._depth)
                query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
                charge = _charger(keeper, principal) if keeper is not None else None
                incoming = Incoming(raw, headers, query, request_id, charge)
                gateway = self._gateway()
                if oip:
                    reply = await oip_infer(gateway, name, ref, incoming)
                else:
                    reply = await plain_predict(gateway, name, incoming)
        except CorralError as exc:
            reply = render(exc)
        except Exception:
            log.exception("unexpected error on POST %s", scope["path"])
            reply = render(
                CorralError("Corral failed unexpectedly; the error is in the server log")
            )
        await _send_reply(send, reply, raw_id)

    async def _read(self, receive: Receive, headers: Mapping[str, str]) -> bytes:
        check_declared_size(headers, self._limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise InvalidArgument("the client went away before sending its whole request")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                raise too_large(self._limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
