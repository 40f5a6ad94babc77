"""Who is calling: each HTTP request's principal, from its token or its session cookie.

``FrontDoor`` (the outermost ASGI layer) asks :meth:`Authenticator.resolve` once per request,
before routing, and runs the rest of the request inside ``corral.access.acting_as``. The
services then decide what the principal may do (``corral.access.require``); this module only
says who it is:

- ``Authorization: Bearer <secret>``: the token's user (``IdentityService.authenticate``;
  a cached token costs one hash and one dict lookup);
- else the ``corral_session`` cookie the web login sets, the same way;
- else the anonymous principal, whose role is ``settings.anonymous_role`` (``none``: no role).

Credentials that do not authenticate (unknown, expired, revoked, a disabled user) are refused
with 401 and ``WWW-Authenticate: Bearer``: never quietly downgraded to anonymous, so a client
learns at once that its token stopped working. Two exceptions: the public paths (health, metrics,
static files, the login page, the API docs) never refuse, and a stale session cookie on a web
page (not ``/api``, not ``/v2``) makes that request anonymous and clears the cookie, so the page
can offer its login instead of a JSON error. When anonymous callers have no role, a request to
``/api`` or ``/v2`` without credentials is refused here too, before its body is read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import Send

from corral.access import Principal, Role
from corral.api.errors import CHALLENGE, PROBLEM, problem_body
from corral.errors import PermissionDenied, Unauthenticated

if TYPE_CHECKING:
    from corral.wiring import Corral

__all__ = [
    "CHALLENGE",
    "COOKIE",
    "PUBLIC_PATHS",
    "Authenticator",
    "anonymous_principal",
    "is_public",
    "refresh_forever",
    "send_unauthenticated",
    "session_write_refusal",
]

log = logging.getLogger("corral.api")

COOKIE = "corral_session"
AUTHORIZATION = b"authorization"
COOKIE_HEADER = b"cookie"
_COOKIE_NAME = COOKIE.encode()
# Reachable without any principal check: probes, scrapers, the login page and what it loads.
PUBLIC_PATHS = frozenset(
    {
        "/v2/health/live",
        "/v2/health/ready",
        "/api/v1/health",
        "/metrics",
        "/login",
        "/logout",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
    }
)
_PUBLIC_PREFIXES = ("/static/",)
_NEEDS_TOKEN = (
    "this server needs a token: send 'Authorization: Bearer <token>' "
    "(the corral CLI and SDK send $CORRAL_TOKEN)"
)
_CLEAR_COOKIE = f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax".encode()


def is_public(path: str) -> bool:
    """Whether ``path`` is answered whoever calls (no credentials are checked)."""
    return path in PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES)


def is_oip(path: str) -> bool:
    """Whether ``path`` belongs to the Open Inference Protocol (errors as ``{"error": …}``)."""
    return path == "/v2" or path.startswith("/v2/")


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or is_oip(path)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_write_refusal(
    method: str, path: str, authorization: bytes | None, principal: Principal
) -> PermissionDenied | None:
    """Why an API request that changes something may not ride on the session cookie.

    The web pages change things only through their own forms, which carry a CSRF token; the
    API and the OIP routes take a cookie-borne session for reading only, so a page on another
    site (even a same-site one, which ``SameSite=Lax`` lets through) cannot make the
    browser write with the user's session.
    """
    if (
        authorization is None
        and principal.authenticated
        and method not in _SAFE_METHODS
        and _is_api(path)
    ):
        return PermissionDenied(
            "a web session may only read the API: send a token as Authorization: Bearer … "
            "to change things or predict (this keeps other sites from acting as you)"
        )
    return None


def anonymous_principal(role: str) -> Principal:
    """The principal of requests without credentials (``role`` ``"none"``: no role at all)."""
    return Principal(
        name="anonymous",
        global_role=None if role == "none" else Role.parse(role),
        authenticated=False,
    )


def bearer_secret(value: str) -> str:
    """The secret of an ``Authorization`` header value; only the Bearer scheme is accepted."""
    scheme, _, secret = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated(
            f"the Authorization header uses the {scheme[:20]!r} scheme; "
            "send 'Authorization: Bearer <token>'"
        )
    secret = secret.strip()
    if not secret:
        raise Unauthenticated("the Authorization header has no token after 'Bearer'")
    return secret


def session_secret(header: str) -> str | None:
    """The ``corral_session`` value of a ``Cookie`` header, if it carries one."""
    if COOKIE not in header:
        return None
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE and value:
            return value.strip('"')
    return None


@dataclass(frozen=True, slots=True)
class Resolved:
    """A request's principal, and whether its reply must clear a stale session cookie."""

    principal: Principal
    clear_cookie: bool = False


class Authenticator:
    """Resolves a request's principal from its credentials (see the module docstring)."""

    def __init__(self, identity: Callable[[], Any], anonymous_role: str) -> None:
        # A callable: the Corral's identity service is built on first use, and requests
        # without credentials never need it.
        self._identity = identity
        self.anonymous = anonymous_principal(anonymous_role)
        self._anonymous = Resolved(self.anonymous)
        self._closed = self.anonymous.global_role is None

    def resolve(self, path: str, authorization: bytes | None, cookie: bytes | None) -> Resolved:
        """The principal for a request to ``path``; raises ``Unauthenticated`` (401)."""
        public = is_public(path)
        if authorization is not None or cookie is not None:
            try:
                resolved = self._authenticate(authorization, cookie)
            except Unauthenticated:
                if authorization is None and (public or not _is_api(path)):
                    return Resolved(self.anonymous, clear_cookie=True)
                if public:
                    return self._anonymous
                raise
            if resolved is not None:
                return resolved
        if self._closed and not public and _is_api(path):
            # Anonymous callers can do nothing here: say so before reading the request.
            raise Unauthenticated(_NEEDS_TOKEN)
        return self._anonymous

    def _authenticate(self, authorization: bytes | None, cookie: bytes | None) -> Resolved | None:
        if authorization is not None:
            secret = bearer_secret(authorization.decode("latin-1"))
        else:
            found = session_secret((cookie or b"").decode("latin-1"))
            if found is None:
                return None  # other cookies only
            secret = found
        return Resolved(self._identity().authenticate(secret))


def unauthenticated_reply(
    exc: Unauthenticated, path: str, *, clear_cookie: bool = False
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and headers of a 401: problem+json, or OIP's ``{"error": …}`` under ``/v2``."""
    if is_oip(path):
        body, media_type = orjson.dumps({"error": exc.message}), b"application/json"
    else:
        body, media_type = problem_body(401, exc.title, exc.message, exc.code), PROBLEM.encode()
    headers = [
        (b"content-type", media_type),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", CHALLENGE.encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    if clear_cookie:
        headers.append((b"set-cookie", _CLEAR_COOKIE))
    return body, headers


async def send_unauthenticated(
    send: Send,
    exc: Unauthenticated,
    path: str,
    extra: list[tuple[bytes, bytes]],
    *,
    clear_cookie: bool = False,
) -> None:
    """Answer 401 for a request whose credentials did not authenticate."""
    body, headers = unauthenticated_reply(exc, path, clear_cookie=clear_cookie)
    await send({"type": "http.response.start", "status": 401, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": body})


def sent_session(authorization: bytes | None, cookie: bytes | None) -> bool:
    """Whether the session cookie was the request's credential (a refusal then clears it)."""
    return authorization is None and cookie is not None and _COOKIE_NAME in cookie


def clear_cookie_header() -> tuple[bytes, bytes]:
    """A ``Set-Cookie`` header that removes a stale session cookie from the browser."""
    return (b"set-cookie", _CLEAR_COOKIE)


async def refresh_forever(wired: Corral, seconds: float) -> None:
    """Drop cached tokens when another process changed identities (revocations, grants)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await asyncio.to_thread(wired.identity.refresh)
        except Exception:  # the top of a background task: log, keep serving, try again
            log.exception("could not refresh the identity cache; retrying")
