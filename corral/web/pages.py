"""The HTML pages: the model list, the model page and serving, rendered on the server."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Scope

from corral._version import __version__
from corral.access import Action, current
from corral.errors import (
    CorralError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from corral.registry.entities import (
    Alias,
    ConfigRevision,
    Consumer,
    ModelVersion,
    Page,
    Resolution,
)
from corral.registry.errors import ModelNotFound
from corral.registry.permissions import require_somewhere, visible
from corral.registry.service import RegistryService
from corral.serving.gateway import Gateway
from corral.web._monitoring import monitoring_context, overview_context
from corral.web._serving import model_serving, serving_status
from corral.web.auth import FormFields, PageRoute, check_form, session_context
from corral.web.auth import router as auth_router

__all__ = ["install_pages"]

PAGE_SIZE = 100
MAX_QUERY = 200
# Keeps offsets within a 64-bit integer whatever the URL says.
MAX_PAGE_NUMBER = 10**9
_HERE = Path(__file__).parent
# Pages load nothing but their own CSS and images: no inline script, no third party.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'",
    "X-Content-Type-Options": "nosniff",
}

T = TypeVar("T")
# PageRoute: a page that needs a login redirects to it; a refused one shows a 403 page.
router = APIRouter(include_in_schema=False, route_class=PageRoute)


def install_pages(app: FastAPI) -> None:
    """Add the HTML pages and their static files (``/static``) to ``app``."""
    app.include_router(router)
    app.include_router(auth_router)
    app.mount("/static", _StaticFiles(directory=_HERE / "static"), name="static")


class _StaticFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


# -- template helpers -------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _size(value: int | None) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _number(value: float) -> str:
    return f"{value:.6g}"


def _tally(value: float) -> str:
    """A counter's value: whole numbers with thousands separators."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _seconds(value: float) -> str:
    return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def _base_context(request: Request) -> dict[str, Any]:
    return {"root": request.scope.get("root_path", ""), "corral_version": __version__}


def _make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=_when,
        size=_size,
        number=_number,
        tally=_tally,
        seconds=_seconds,
        pretty_json=_pretty_json,
    )
    return Jinja2Templates(env=env, context_processors=[_base_context, session_context])


templates = _make_templates()


def _render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, template, {"nav": "", **context}, status_code=status_code, headers=SECURITY_HEADERS
    )
    assert isinstance(response, HTMLResponse)
    return response


# Refusals keep their meaning on pages (a quarantined version is a refused permission too).
_STATUS: tuple[tuple[type[CorralError], int], ...] = (
    (NotFound, 404),
    (InvalidArgument, 400),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
)


def _error(request: Request, exc: CorralError, command: str = "") -> HTMLResponse:
    """An HTML error page; ``command`` is a CLI line that would fix it."""
    if isinstance(exc, Unauthenticated):
        raise exc  # PageRoute sends the browser to the login page instead
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    titles = {
        400: "Bad request",
        401: "Sign in needed",
        403: "Not allowed",
        404: "Not found",
        500: "Something went wrong",
    }
    context = {"nav": "models", "status": status, "title": titles[status]}
    context.update(message=exc.message, command=command)
    return _render(request, "error.html", context, status_code=status)


def _registry(request: Request) -> RegistryService:
    registry: RegistryService = request.app.state.corral.registry
    return registry


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.corral.gateway
    return gateway


# -- pagination -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pager:
    """Where a table stands in a paged list, and links to its neighbours."""

    page: int
    pages: int
    total: int
    first: int
    last: int
    prev_url: str | None
    next_url: str | None


def _page_number(raw: str | None) -> int:
    try:
        return min(max(1, int(raw or "1")), MAX_PAGE_NUMBER)
    except ValueError:
        return 1


def _paged(fetch: Callable[[int], Page[T]], raw_page: str | None) -> tuple[Page[T], int]:
    """The asked page of a list (the last one when asked past its end) and its number."""
    number = _page_number(raw_page)
    found = fetch((number - 1) * PAGE_SIZE)
    if not found.items and found.total:
        number = min(number, math.ceil(found.total / PAGE_SIZE))
        found = fetch((number - 1) * PAGE_SIZE)
    return found, number


def _pager(request: Request, param: str, page: int, total: int, shown: int, anchor: str) -> Pager:
    pages = max(1, math.ceil(total / PAGE_SIZE))

    def url(number: int) -> str:
        params = dict(request.query_params)
        params[param] = str(number)
        return f"?{urlencode(params)}{anchor}"

    first = (page - 1) * PAGE_SIZE + 1 if shown else 0
    return Pager(
        page=page,
        pages=pages,
        total=total,
        first=first,
        last=first + shown - 1 if shown else 0,
        prev_url=url(page - 1) if page > 1 else None,
        next_url=url(page + 1) if page < pages else None,
    )


# -- routes -----------------------------------------------------------------------------


@router.get("/")
def home(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{request.scope.get('root_path', '')}/models", status_code=307)


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, q: str | None = None, page: str | None = None) -> HTMLResponse:
    svc = _registry(request)
    query = (q or "").strip()[:MAX_QUERY]
    found, number = _paged(
        lambda offset: svc.list_models(query or None, offset=offset, limit=PAGE_SIZE), page
    )
    context = {
        "nav": "models",
        "query": query,
        "models": found.items,
        "pager": _pager(request, "page", number, found.total, len(found.items), ""),
    }
    return _render(request, "models.html", context)


@dataclass(frozen=True, slots=True)
class AliasView:
    alias: Alias
    target: ModelVersion | None


@dataclass(frozen=True, slots=True)
class ConsumerView:
    consumer: Consumer
    resolution: Resolution | None
    problem: str


@dataclass(frozen=True, slots=True)
class ConfigView:
    latest: ConfigRevision
    revisions: int


def _alias_views(svc: RegistryService, name: str) -> list[AliasView]:
    views = []
    for alias in svc.list_aliases(name):
        try:
            target: ModelVersion | None = svc.get_version(name, alias.version)
        except NotFound:
            target = None
        views.append(AliasView(alias, target))
    return views


def _consumer_views(svc: RegistryService, name: str) -> list[ConsumerView]:
    views = []
    for consumer in svc.list_consumers(name):
        try:
            views.append(ConsumerView(consumer, svc.resolve_consumer(consumer.name, name), ""))
        except NotFound as exc:
            views.append(ConsumerView(consumer, None, exc.message))
    return views


def _config_views(svc: RegistryService, name: str) -> list[ConfigView]:
    latest: dict[str, ConfigRevision] = {}
    counts: dict[str, int] = {}
    for revision in svc.list_configs(name):
        counts[revision.config] = counts.get(revision.config, 0) + 1
        if revision.config not in latest or revision.revision > latest[revision.config].revision:
            latest[revision.config] = revision
    return [ConfigView(latest[config], counts[config]) for config in sorted(latest)]


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(
    request: Request, name: str, vpage: str | None = None, hpage: str | None = None
) -> HTMLResponse:
    return _model_response(request, name, vpage, hpage)


def _model_response(
    request: Request,
    name: str,
    vpage: str | None = None,
    hpage: str | None = None,
    action_error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    try:
        context = _model_context(request, name, vpage, hpage)
    except CorralError as exc:
        command = f"corral register {name} PATH" if isinstance(exc, ModelNotFound) else ""
        return _error(request, exc, command)
    context["action_error"] = action_error
    return _render(request, "model.html", context, status_code=status_code)


def _model_context(
    request: Request, name: str, vpage: str | None, hpage: str | None
) -> dict[str, Any]:
    svc = _registry(request)
    model = svc.get_model(name)
    # Only hides the forms: the service checks the role again when one is sent.
    can_admin = current().allows(Action.ADMIN, name)
    versions, version_page = _paged(
        lambda offset: svc.list_versions(name, offset, PAGE_SIZE), vpage
    )
    history, history_page = _paged(
        lambda offset: svc.alias_history(name, None, offset, PAGE_SIZE), hpage
    )
    return {
        "nav": "models",
        "model": model,
        "versions": versions.items,
        "versions_pager": _pager(
            request, "vpage", version_page, versions.total, len(versions.items), "#section-versions"
        ),
        "aliases": _alias_views(svc, name),
        "history": history.items,
        "history_pager": _pager(
            request, "hpage", history_page, history.total, len(history.items), "#section-history"
        ),
        "consumers": _consumer_views(svc, name),
        "configs": _config_views(svc, name),
        "serving": model_serving(svc, _gateway(request), name, str(request.base_url).rstrip("/")),
        "can_admin": can_admin,
    }


# -- quarantine by hand -----------------------------------------------------------------

_MAX_REASON = 1000


@router.post("/models/{name}/versions/{number}/release")
def release_version(request: Request, name: str, number: int, form: FormFields) -> Response:
    return _set_quarantine(request, name, number, form, quarantined=False)


@router.post("/models/{name}/versions/{number}/quarantine")
def quarantine_version(request: Request, name: str, number: int, form: FormFields) -> Response:
    return _set_quarantine(request, name, number, form, quarantined=True)


def _set_quarantine(
    request: Request, name: str, number: int, form: dict[str, str], *, quarantined: bool
) -> Response:
    """Release or quarantine a version for an admin; the service checks the role and audits."""
    refused = check_form(request, form)
    if refused is not None:
        return refused
    reason = form.get("reason", "").strip()[:_MAX_REASON]
    try:
        _registry(request).set_quarantine(
            name, number, quarantined=quarantined, reason=reason, actor=current().name
        )
    except InvalidArgument as exc:  # no reason given: the page again, saying so
        return _model_response(request, name, action_error=exc.message, status_code=400)
    except CorralError as exc:
        return _error(request, exc)
    url = f"{request.scope.get('root_path', '')}/models/{quote(name, safe='')}#section-versions"
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


@router.get("/serving", response_class=HTMLResponse)
def serving_page(request: Request) -> HTMLResponse:
    principal = require_somewhere(Action.READ)
    status = serving_status(_registry(request), _gateway(request))
    # The process serves every model: show each caller only the models it may see.
    status = dataclasses.replace(
        status,
        loaded=tuple(v for v in status.loaded if visible(principal, v.model)),
        traffic=tuple(t for t in status.traffic if visible(principal, t.model)),
    )
    context = {"nav": "serving", "status": status}
    return _render(request, "serving.html", context)


# -- monitoring -------------------------------------------------------------------------


@router.get("/models/{name}/monitoring", response_class=HTMLResponse)
def model_monitoring_page(
    request: Request,
    name: str,
    window: str = "",
    bucket: str = "",
    version: str = "",
    reference: str = "",
) -> HTMLResponse:
    try:
        number = int(version) if version.strip() else None
    except ValueError:
        return _error(request, InvalidArgument(f"version {version[:40]!r} is not a number"))
    try:
        context = monitoring_context(
            request.app.state.corral,
            name,
            window=window.strip()[:40],
            bucket=bucket.strip()[:40],
            version=number,
            reference=reference.strip()[:MAX_QUERY],
            base_url=str(request.base_url).rstrip("/"),
        )
    except CorralError as exc:
        command = f"corral register {name} PATH" if isinstance(exc, ModelNotFound) else ""
        return _error(request, exc, command)
    return _render(request, "monitoring.html", {"nav": "monitoring", **context})


@router.get("/monitoring", response_class=HTMLResponse)
def monitoring_page(request: Request, page: str | None = None) -> HTMLResponse:
    svc = _registry(request)
    found, number = _paged(
        lambda offset: svc.list_models(None, offset=offset, limit=PAGE_SIZE), page
    )
    context = {
        "nav": "monitoring",
        "pager": _pager(request, "page", number, found.total, len(found.items), ""),
        **overview_context(request.app.state.corral, found.items),
    }
    return _render(request, "monitoring_overview.html", context)


# -- audit ------------------------------------------------------------------------------


def _audit_since(raw: str) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidArgument(
            f"'since' {raw[:40]!r} is not a date or time like 2026-11-28 or 2026-11-28T09:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    actor: str = "",
    action: str = "",
    target: str = "",
    since: str = "",
    page: str | None = None,
) -> HTMLResponse:
    svc = _registry(request)
    filters = {
        "actor": actor.strip()[:MAX_QUERY],
        "action": action.strip()[:64],
        "target": target.strip()[:MAX_QUERY],
        "since": since.strip()[:40],
    }
    try:
        moment = _audit_since(filters["since"])
        found, number = _paged(
            lambda offset: svc.list_audit(
                actor=filters["actor"] or None,
                action=filters["action"] or None,
                target=filters["target"] or None,
                since=moment,
                offset=offset,
                limit=PAGE_SIZE,
            ),
            page,
        )
    except InvalidArgument as exc:
        return _error(request, exc)
    context = {
        "nav": "audit",
        "filters": filters,
        "filtered": any(filters.values()),
        "events": found.items,
        "pager": _pager(request, "page", number, found.total, len(found.items), ""),
    }
    return _render(request, "audit.html", context)
