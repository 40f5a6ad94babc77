"""Request ids: every response carries ``X-Request-Id`` (the caller's, or a new one)."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_MAX = 128


def _incoming(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            text: str = value.decode("latin-1")
            if 0 < len(text) <= _MAX and text.isprintable() and text.isascii():
                return text
            return None
    return None


class RequestIdMiddleware:
    """Pure ASGI (no per-request task or body buffering): the id is in ``request.state``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        raw = request_id.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((HEADER, raw))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
