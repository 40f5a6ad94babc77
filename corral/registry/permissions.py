"""How the services apply ``corral.access`` beyond one ``require`` call.

- :func:`require_somewhere`: calls that name no model yet (an upload, a list) need the role
  globally or on at least one model;
- :func:`require_owner_or`: a model's owner (a user, or a team the caller belongs to) may
  maintain it even before its identity cache knows it owns the model;
- :func:`visible` and :func:`visible_page`: lists show only the models the caller can see.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from corral.access import SYSTEM, Action, Principal, current, require
from corral.registry.entities import Page
from corral.registry.values import MAX_PAGE

__all__ = [
    "default_owner",
    "require_owner_or",
    "require_somewhere",
    "visible",
    "visible_page",
]

T = TypeVar("T")


def require_somewhere(action: Action) -> Principal:
    """The current principal if it may do ``action`` globally or on at least one model."""
    principal = current()
    if principal.allows(action):
        return principal
    if any(principal.allows(action, model) for model in principal.model_roles):
        return principal
    if principal.scope is not None and any(principal.allows(action, m) for m in principal.scope):
        return principal
    return require(action)  # raises, with the message of a global refusal


def require_owner_or(action: Action, model: str, owner: Callable[[], str]) -> Principal:
    """``require(action, model)``, except that the model's owner may maintain it.

    ``owner`` is called only when the roles alone refuse (a deny path, so the extra read
    costs nothing on the common path).
    """
    principal = current()
    if principal.allows(action, model):
        return principal
    if (
        action.needs <= Action.MAINTAIN.needs
        and principal.authenticated
        and not principal.read_only
        and (principal.scope is None or model in principal.scope)
    ):
        who = owner()
        if who and (who == principal.name or who in principal.teams):
            return principal
    return require(action, model)


def default_owner(actor: str) -> str:
    """Who owns a model created without an owner: the authenticated caller, else ``actor``."""
    principal = current()
    if principal.authenticated and principal is not SYSTEM:
        return principal.name
    return actor


def visible(principal: Principal, model: str | None) -> bool:
    """Whether an item of ``model`` shows in ``principal``'s lists (``None``: global items)."""
    if principal.sees_everything:
        return True
    return model is not None and principal.can_see(model)


def visible_page(
    fetch: Callable[[int, int], Page[T]],
    model_of: Callable[[T], str],
    offset: int,
    limit: int,
) -> Page[T]:
    """``fetch(offset, limit)`` filtered to the models the current principal can see.

    A caller that sees everything costs one fetch. Others page through the whole result
    (such callers see few models: the rows they may not see are skipped, the totals and
    offsets count only the rest).
    """
    principal = current()
    if principal.sees_everything:
        return fetch(offset, limit)
    kept: list[T] = []
    seen = 0
    start = 0
    while True:
        page = fetch(start, MAX_PAGE)
        for item in page.items:
            if principal.can_see(model_of(item)):
                if offset <= seen < offset + limit:
                    kept.append(item)
                seen += 1
        start += len(page.items)
        if not page.items or start >= page.total:
            return Page(items=kept, total=seen, offset=offset, limit=limit)
