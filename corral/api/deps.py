"""Request-scoped dependencies: the wired services and who is calling."""

from __future__ import annotations

from fastapi import Header, Request

from corral.access import current
from corral.errors import InvalidArgument
from corral.registry.audit import ORIGIN
from corral.registry.service import RegistryService


# Dependencies are async on purpose: a plain `def` would cost a thread hop per request.
async def registry(request: Request) -> RegistryService:
    service: RegistryService = request.app.state.corral.registry
    # Where the call comes from, for the audit log (the endpoint runs in a copy of this context).
    ORIGIN.set(request.client.host if request.client else "")
    return service


async def actor(x_corral_actor: str | None = Header(default=None)) -> str:
    """Who is calling, for the audit log: the principal's name when it authenticated.

    Anonymous callers (when the server lets them in) may name themselves with
    ``X-Corral-Actor``; an authenticated caller cannot claim to be someone else.
    """
    principal = current()
    if principal.authenticated:
        return principal.name
    if x_corral_actor is None:
        return "anonymous"
    if len(x_corral_actor) > 128 or not x_corral_actor.isprintable():
        raise InvalidArgument("X-Corral-Actor must be a printable name of at most 128 characters")
    return x_corral_actor


def parse_tags(values: list[str] | None) -> dict[str, str]:
    """``tag=k=v`` query values into a dict."""
    tags: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"tag filter {item[:100]!r} must look like key=value")
        tags[key] = value
    return tags
