"""The web login: a session in an HttpOnly cookie, a CSRF token on every form, account pages.

Signing in (``POST /login``) asks ``IdentityService.login`` for a session token and keeps its
secret in the ``corral_session`` cookie (HttpOnly, SameSite=Lax, Path=/, Secure over https,
lasting ``session_hours``); the front door turns that cookie into the request's principal on
every later request (``corral.api.auth``). Every form that POSTs carries a ``csrf`` field:

- signed in, an HMAC of the session secret, which only this session's pages can know;
- signed out (the login form), a random ``corral_csrf`` cookie (HttpOnly, SameSite=Strict)
  whose value the form repeats (the double-submit pattern).

A POST whose token is missing or wrong, or whose ``Origin`` names another site, gets a 403
page and changes nothing. Pages route through :class:`PageRoute`: a service that raises
``Unauthenticated`` sends the browser to the login page, ``PermissionDenied`` shows a 403 page.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from corral.access import Action, Principal, Role, current
from corral.errors import (
    AlreadyExists,
    Conflict,
    CorralError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from corral.security.identity import TIERS

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "PageRoute", "router", "session_context"]

# The front door reads the same name (corral.api.auth.COOKIE; the web layer may not import api).
SESSION_COOKIE = "corral_session"
CSRF_COOKIE = "corral_csrf"
_CSRF_PURPOSE = b"corral-csrf"
# Pages that show secrets or forms with tokens are never kept by caches or the back button.
_NO_STORE = {"Cache-Control": "no-store"}
_MAX_FIELD = 200
_MAX_TOKEN_DAYS = 3650
_MAX_FORM_MODELS = 4000  # a token's models, comma-separated
_FORGED = (
    "this form's security token is missing or out of date, so Corral did not act on it. "
    "Reload the page and submit the form again."
)

_MAX_FORM_BYTES = 64 * 1024


async def _form_fields(request: Request) -> dict[str, str]:
    """The fields of an urlencoded form (the only kind these pages send); {} for anything else.

    Parsed here rather than by FastAPI's ``Form``, which needs python-multipart.
    """
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if request.method != "POST" or kind != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return {}
    try:
        text = body.decode("utf-8", "replace")
        parsed = parse_qs(text, keep_blank_values=True, max_num_fields=20)
    except ValueError:  # more fields than any of these forms has
        return {}
    return {name: values[0] for name, values in parsed.items()}


FormFields = Annotated[dict[str, str], Depends(_form_fields)]


# -- sessions and CSRF ------------------------------------------------------------------


def _session(request: Request) -> str | None:
    """The secret of the request's session, when that session is what signed it in."""
    if "authorization" in request.headers or not current().authenticated:
        return None
    return request.cookies.get(SESSION_COOKIE) or None


def _session_token(secret: str) -> str:
    return hmac.new(secret.encode(), _CSRF_PURPOSE, hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    """The ``csrf`` value for a form on this page (makes the login cookie when missing)."""
    secret = _session(request)
    if secret is not None:
        return _session_token(secret)
    value = str(request.cookies.get(CSRF_COOKIE) or getattr(request.state, "csrf_cookie", ""))
    if len(value) < 32:
        value = secrets.token_urlsafe(32)
        request.state.csrf_cookie = value  # PageRoute sets it on the response
    return value


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}".lower()


def _check_origin(request: Request) -> Response | None:
    origin = request.headers.get("origin")
    if origin is None or origin.lower() == _own_origin(request):
        return None
    message = (
        f"this form was sent from another site ({origin[:100]}); "
        "Corral accepts forms only from its own pages"
    )
    return forbidden(request, message)


def check_form(request: Request, form: dict[str, str]) -> Response | None:
    """A 403 page when a POST is cross-site or its CSRF token is wrong; else ``None``."""
    refused = _check_origin(request)
    if refused is not None:
        return refused
    secret = _session(request)
    expected = _session_token(secret) if secret else request.cookies.get(CSRF_COOKIE, "")
    submitted = form.get("csrf", "")
    if not expected or not hmac.compare_digest(expected.encode(), submitted.encode()):
        return forbidden(request, _FORGED)
    return None


def safe_next(target: str, root: str) -> str:
    """``target`` when it is a path on this site, else the model list (no open redirects)."""
    fallback = f"{root}/models"
    if not target.startswith("/") or len(target) > 2000:
        return fallback
    # Browsers read "//host", "/\host" and whitespace-split forms of them as other sites.
    if target[1:2] in ("/", "\\") or any(c == "\\" or ord(c) < 0x21 for c in target):
        return fallback
    return target


def session_context(request: Request) -> dict[str, Any]:
    """Template context of every page: who is signed in, and the forms' CSRF token."""
    principal = current()
    viewer = principal if principal.authenticated else None
    login_url = f"{request.scope.get('root_path', '')}/login"
    if request.method == "GET" and not request.url.path.endswith(("/login", "/logout")):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login_url += "?" + urlencode({"next": here})  # come back here after signing in
    return {
        "viewer": viewer,
        "viewer_is_admin": viewer is not None and viewer.allows(Action.ADMIN),
        "csrf": lambda: csrf_token(request),
        "login_url": login_url,
    }


def login_redirect(request: Request) -> RedirectResponse:
    """303 to the login page, which comes back here (GET pages only) after signing in."""
    url = f"{request.scope.get('root_path', '')}/login"
    if request.method == "GET":
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        url += "?" + urlencode({"next": here})
    return RedirectResponse(url, status_code=303, headers=_NO_STORE)


class PageRoute(APIRoute):
    """A page: logs in on ``Unauthenticated``, shows 403 on ``PermissionDenied``, sets CSRF."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                response = await handler(request)
            except Unauthenticated:
                response = login_redirect(request)
            except PermissionDenied as exc:
                response = forbidden(request, exc.message)
            fresh = getattr(request.state, "csrf_cookie", None)
            if fresh and request.cookies.get(CSRF_COOKIE) != fresh:
                response.set_cookie(
                    CSRF_COOKIE,
                    fresh,
                    path="/",
                    secure=request.url.scheme == "https",
                    httponly=True,
                    samesite="strict",
                )
            return response

        return page


router = APIRouter(include_in_schema=False, route_class=PageRoute)


# -- rendering --------------------------------------------------------------------------


def _page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    # Imported here: pages imports this module (PageRoute, session_context) at its top.
    from corral.web import pages

    response = pages._render(request, template, context, status_code=status_code)
    response.headers.update(_NO_STORE)
    return response


def forbidden(request: Request, message: str) -> HTMLResponse:
    """The 403 page, saying why."""
    context = {"nav": "", "status": 403, "title": "Not allowed", "message": message, "command": ""}
    return _page(request, "error.html", context, status_code=403)


def _status(exc: CorralError) -> int:
    if isinstance(exc, NotFound):
        return 404
    return 409 if isinstance(exc, AlreadyExists | Conflict) else 400


def _identity(request: Request) -> Any:
    return request.app.state.corral.identity


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


def _signed_in() -> Principal:
    principal = current()
    if not principal.authenticated:
        raise Unauthenticated("this page needs you to sign in")
    return principal


# -- login and logout -------------------------------------------------------------------


def _login_form(
    request: Request, next_url: str, name: str = "", error: str = "", status_code: int = 200
) -> HTMLResponse:
    context = {
        "nav": "login",
        "next_url": safe_next(next_url, _root(request)),
        "name": name,
        "error": error,
    }
    return _page(request, "login.html", context, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request, next_url: Annotated[str, Query(alias="next")] = ""
) -> HTMLResponse:
    return _login_form(request, next_url[:2000])


@router.post("/login")
def login(
    request: Request,
    form: FormFields,
) -> Response:
    refused = check_form(request, form)
    if refused is not None:
        return refused
    name, password = form.get("name", "").strip()[:_MAX_FIELD], form.get("password", "")
    next_url = form.get("next", "")
    try:
        _, secret = _identity(request).login(name, password)
    except Unauthenticated as exc:
        return _login_form(request, next_url, name, exc.message, status_code=401)
    except (InvalidArgument, NotFound) as exc:
        return _login_form(request, next_url, name, exc.message, status_code=_status(exc))
    https = request.url.scheme == "https"
    response = RedirectResponse(
        safe_next(next_url, _root(request)), status_code=303, headers=_NO_STORE
    )
    hours = request.app.state.corral.settings.session_hours
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(hours * 3600),
        path="/",
        secure=https,
        httponly=True,
        samesite="lax",
    )
    # The login form's token has served its purpose; signed in, forms use the session's.
    response.delete_cookie(CSRF_COOKIE, path="/", secure=https, httponly=True, samesite="strict")
    return response


@router.post("/logout")
def logout(request: Request, form: FormFields) -> Response:
    secret = _session(request)
    # Without a live session there is nothing to end: only a stale cookie to clear.
    refused = check_form(request, form) if secret else _check_origin(request)
    if refused is not None:
        return refused
    if secret:
        with contextlib.suppress(NotFound):
            _identity(request).logout(secret)
    response = RedirectResponse(f"{_root(request)}/login", status_code=303, headers=_NO_STORE)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


# -- the account page -------------------------------------------------------------------


def _token_state(token: Any, now: datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


def _account(
    request: Request, error: str = "", status_code: int = 200, form: dict[str, str] | None = None
) -> HTMLResponse:
    principal = _signed_in()
    tokens = _identity(request).list_tokens()
    now = datetime.now(UTC)
    api_tokens = sorted(
        (t for t in tokens if t.kind == "api"), key=lambda t: t.created_at, reverse=True
    )
    context = {
        "nav": "account",
        "principal": principal,
        "global_role": principal.global_role.label if principal.global_role else "",
        "model_roles": sorted((m, r.label) for m, r in principal.model_roles.items()),
        "tokens": [(t, _token_state(t, now)) for t in api_tokens],
        "sessions": sum(
            1 for t in tokens if t.kind == "session" and _token_state(t, now) == "active"
        ),
        "error": error,
        "form": {**_TOKEN_FORM, **(form or {})},
        "max_days": _MAX_TOKEN_DAYS,
        "tiers": TIERS,
        "may_pick_tier": principal.allows(Action.ADMIN),
    }
    return _page(request, "account.html", context, status_code=status_code)


_TOKEN_FORM = {
    "name": "",
    "days": "90",
    "read_only": "",
    "models": "",
    "rate_limit": "",
    "rows_per_day": "",
    "tier": "bronze",
}


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request) -> HTMLResponse:
    return _account(request)


def _expiry(days: str) -> timedelta | None:
    if not days.strip():
        return None
    try:
        number = int(days)
    except ValueError:
        raise InvalidArgument(f"expiry {days[:20]!r} is not a whole number of days") from None
    if not 1 <= number <= _MAX_TOKEN_DAYS:
        raise InvalidArgument(
            f"expiry must be between 1 and {_MAX_TOKEN_DAYS} days (empty: never), not {number}"
        )
    return timedelta(days=number)


def _models(text: str) -> list[str] | None:
    """A token's scope from "a, b": ``None`` (every model) when empty."""
    names = [name.strip() for name in text.split(",")]
    return [name for name in names if name] or None


def _rows_per_day(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"rows per day {text[:20]!r} is not a whole number") from None


@router.post("/account/tokens", response_class=HTMLResponse)
def create_token(request: Request, form: FormFields) -> Response:
    refused = check_form(request, form)
    if refused is not None:
        return refused
    _signed_in()
    shown = {
        "name": form.get("name", "").strip()[:_MAX_FIELD],
        "days": form.get("days", "")[:20],
        "read_only": form.get("read_only", "")[:5],
        "models": form.get("models", "").strip()[:_MAX_FORM_MODELS],
        "rate_limit": form.get("rate_limit", "").strip()[:_MAX_FIELD],
        "rows_per_day": form.get("rows_per_day", "").strip()[:20],
        "tier": form.get("tier", "").strip()[:20] or "bronze",
    }
    try:
        token, secret = _identity(request).create_token(
            name=shown["name"],
            expires_in=_expiry(shown["days"]),
            models=_models(shown["models"]),
            read_only=bool(shown["read_only"]),
            tier=shown["tier"],
            rate_limit=shown["rate_limit"],
            rows_per_day=_rows_per_day(shown["rows_per_day"]),
        )
    except (InvalidArgument, AlreadyExists, Conflict) as exc:
        return _account(request, exc.message, _status(exc), shown)
    except PermissionDenied as exc:  # a tier above bronze, or a scoped token's other models
        return _account(request, exc.message, 403, shown)
    context = {"nav": "account", "token": token, "token_secret": secret}
    return _page(request, "token_created.html", context)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: str, form: FormFields) -> Response:
    refused = check_form(request, form)
    if refused is not None:
        return refused
    _signed_in()
    try:
        _identity(request).revoke_token(token_id[:64])
    except NotFound as exc:
        return _account(request, exc.message, 404)
    return RedirectResponse(f"{_root(request)}/account", status_code=303, headers=_NO_STORE)


# -- user administration ----------------------------------------------------------------


def _admin(
    request: Request, error: str = "", status_code: int = 200, form: dict[str, str] | None = None
) -> HTMLResponse:
    _signed_in()
    identity = _identity(request)
    users = identity.list_users()  # admins only: PermissionDenied shows the 403 page
    grants = identity.list_grants()
    by_subject: dict[tuple[str, str], list[Any]] = {}
    for grant in grants:
        by_subject.setdefault((grant.subject_kind, grant.subject), []).append(grant)
    context = {
        "nav": "admin",
        "users": users,
        "teams": identity.list_teams(),
        "grants": by_subject,
        "roles": [role.label for role in Role],
        "error": error,
        "form": form or {},
    }
    return _page(request, "admin_users.html", context, status_code=status_code)


@router.get("/admin/users", response_class=HTMLResponse)
def admin_users_page(request: Request) -> HTMLResponse:
    return _admin(request)


@router.post("/admin/users")
def create_user(request: Request, form: FormFields) -> Response:
    refused = check_form(request, form)
    if refused is not None:
        return refused
    name, password = form.get("name", "").strip()[:_MAX_FIELD], form.get("password", "")
    try:
        _identity(request).create_user(name, password=password or None)
    except (InvalidArgument, AlreadyExists, Conflict) as exc:
        return _admin(request, exc.message, _status(exc), {"user_name": name})
    return RedirectResponse(f"{_root(request)}/admin/users", status_code=303, headers=_NO_STORE)


@router.post("/admin/grants")
def create_grant(
    request: Request,
    form: FormFields,
) -> Response:
    refused = check_form(request, form)
    if refused is not None:
        return refused
    subject = form.get("subject", "").strip()[:_MAX_FIELD]
    model = form.get("model", "").strip()[:_MAX_FIELD]
    kind, role = form.get("kind", "user")[:10], form.get("role", "")[:20]
    shown = {"subject": subject, "kind": kind, "role": role, "model": model}
    try:
        parsed = Role.parse(role)
    except ValueError as exc:
        return _admin(request, str(exc), 400, shown)
    who = {"team": subject} if kind == "team" else {"user": subject}
    try:
        _identity(request).grant(parsed, model=model or None, **who)
    except (InvalidArgument, AlreadyExists, Conflict, NotFound) as exc:
        return _admin(request, exc.message, _status(exc), shown)
    return RedirectResponse(f"{_root(request)}/admin/users", status_code=303, headers=_NO_STORE)


@router.post("/admin/grants/{grant_id}/revoke")
def revoke_grant(request: Request, grant_id: int, form: FormFields) -> Response:
    refused = check_form(request, form)
    if refused is not None:
        return refused
    try:
        _identity(request).revoke_grant(grant_id)
    except NotFound as exc:
        return _admin(request, exc.message, 404)
    return RedirectResponse(f"{_root(request)}/admin/users", status_code=303, headers=_NO_STORE)
