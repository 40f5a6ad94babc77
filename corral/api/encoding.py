"""Turning entities into JSON, and the headers that flag deprecated versions."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from fastapi.responses import Response

from corral.registry.entities import Deprecation


def deprecation_headers(deprecation: Deprecation | None) -> dict[str, str]:
    """``Deprecation`` (RFC 9745) and Corral's message header for a deprecated version."""
    if deprecation is None:
        return {}
    return {
        "Deprecation": f"@{int(deprecation.at.timestamp())}",
        "Corral-Deprecation": quote(deprecation.message, safe=" ,.;:!?'()/-_"),
    }


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Entities as JSON, encoded by orjson (it knows dataclasses, enums and datetimes)."""
    body = orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code=status, media_type="application/json", headers=headers)
