"""The one table from error codes to HTTP statuses, and problem+json bodies (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from corral.errors import CorralError

log = logging.getLogger("corral.api")

STATUS_BY_CODE: dict[str, int] = {
    "not_found": 404,
    "already_exists": 409,
    "invalid_argument": 400,
    "invalid_request": 422,
    "invalid_input": 422,
    "too_large": 413,
    "conflict": 409,
    "integrity_error": 409,
    "signature_invalid": 409,
    "unauthenticated": 401,
    "permission_denied": 403,
    "quarantined": 403,
    "unavailable": 503,
    "rate_limited": 429,
    "corral_error": 500,
}
PROBLEM = "application/problem+json"
# The WWW-Authenticate value of every 401: RFC 9110 wants it to name the scheme that works.
CHALLENGE = 'Bearer realm="corral"'


def _problem(status: int, title: str, detail: str, code: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"https://corral.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem(status: int, title: str, detail: str, code: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        _problem(status, title, detail, code, **extra), status_code=status, media_type=PROBLEM
    )


def problem_body(status: int, title: str, detail: str, code: str) -> bytes:
    """The problem+json body, encoded (for replies built outside FastAPI)."""
    return orjson.dumps(_problem(status, title, detail, code))


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _corral_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CorralError)
    status = STATUS_BY_CODE.get(exc.code, 500)
    response = problem(status, exc.title, exc.message, exc.code)
    if status == 401:
        response.headers["WWW-Authenticate"] = CHALLENGE
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Bodies and parameters FastAPI could not parse: 400 for broken JSON, 422 otherwise."""
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    broken = next((e for e in problems if e.get("type") == "json_invalid"), None)
    if broken is not None:
        where = broken.get("ctx", {}).get("error", "")
        detail = f"the request body is not valid JSON ({where})" if where else ""
        return problem(
            400,
            "Malformed JSON",
            detail or "the request body is not valid JSON",
            "invalid_argument",
        )
    errors = [
        {"field": _where(tuple(e.get("loc", ()))), "message": e.get("msg", "")} for e in problems
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    return problem(422, "Invalid request", detail, "invalid_request", errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such endpoint: {request.method} {request.url.path}"
    return problem(exc.status_code, detail if exc.status_code != 404 else "Not found", detail, code)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(
        500,
        "Internal error",
        "Corral failed unexpectedly; the error is in the server log",
        "internal",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CorralError, _corral_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


# -- OpenAPI documentation of the error replies (``responses=`` of routers and routes) ------

_ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request or invalid argument",
    401: "No valid credentials (send 'Authorization: Bearer <token>')",
    403: "The caller's role, token scope or a quarantine forbids this",
    404: "No such model, version, alias or resource",
    409: "Conflicts with the current state (exists already, unsigned, ...)",
    413: "The request body is too large",
    415: "The request body's media type is not accepted",
    422: "The request does not match its schema or the model's signature",
    429: "Rate limit or quota exceeded (see Retry-After)",
    503: "Not available right now (model loading, overload, store down)",
}
_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
    },
}
# OIP error bodies are the spec's {"error": "..."}; OIP readiness may add name and ready.
_OIP_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "ready": {"type": "boolean"}},
}
API_ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)


def error_responses(*statuses: int, oip: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error ``statuses``: problem+json, or OIP's ``{"error": …}``."""
    media, schema = ("application/json", _OIP_ERROR_SCHEMA) if oip else (PROBLEM, _PROBLEM_SCHEMA)
    return {
        status: {"description": _ERROR_DESCRIPTIONS[status], "content": {media: {"schema": schema}}}
        for status in statuses or API_ERROR_STATUSES
    }


# Every REST route may answer these; routers pass it as ``APIRouter(responses=...)``.
API_ERRORS = error_responses()
OIP_ERRORS = error_responses(oip=True)
