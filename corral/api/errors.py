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
    "corral_error": 500,
}
PROBLEM = "application/problem+json"


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
    return problem(status, exc.title, exc.message, exc.code)


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
