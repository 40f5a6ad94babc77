"""Who is calling, and what they may do: roles, actions and the current principal.

Every service checks access itself with :func:`require` (never the routes), so the CLI,
the REST API, the OIP endpoints and the web pages agree. The caller is a ``Principal``
held in a context variable: the HTTP front door sets it for each request from the token
or session it carries; code that sets nothing (the SDK or CLI on a local home, the
server's own schedules) acts as :data:`SYSTEM`, an admin, since it can read the database
files anyway.

Roles are ordered; each includes the ones below it::

    viewer < consumer < contributor < maintainer < admin
    read     predict    register       aliases,       everything, users,
                        versions       configs,       trust overrides
                                       consumers
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from corral.errors import PermissionDenied, Unauthenticated

__all__ = [
    "ANONYMOUS",
    "SYSTEM",
    "Action",
    "Principal",
    "Role",
    "acting_as",
    "current",
    "require",
]


class Role(enum.IntEnum):
    """A role, granted globally or on one model; a higher role includes every lower one."""

    VIEWER = 1
    CONSUMER = 2
    CONTRIBUTOR = 3
    MAINTAINER = 4
    ADMIN = 5

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(r.label for r in cls)
            raise ValueError(f"unknown role {text!r}; roles are {names}") from None


class Action(enum.Enum):
    """What a service call does; each needs at least one role."""

    READ = Role.VIEWER
    PREDICT = Role.CONSUMER
    REGISTER = Role.CONTRIBUTOR
    MAINTAIN = Role.MAINTAINER
    ADMIN = Role.ADMIN

    @property
    def needs(self) -> Role:
        return Role(self.value)


# Read-only tokens may do these and nothing else.
_READ_ONLY_ACTIONS = frozenset({Action.READ, Action.PREDICT})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or the anonymous one) with its resolved roles.

    ``model_roles`` holds per-model grants (to the user or one of its teams) and the
    maintainer role on each model the user or one of its teams owns. ``scope``, when set,
    limits a token to those models; ``read_only`` to reading and predicting. ``tier``,
    ``rate_limit`` and ``rows_per_day`` come from the token and drive admission and quotas.
    """

    name: str
    global_role: Role | None = None
    model_roles: Mapping[str, Role] = field(default_factory=dict)
    teams: frozenset[str] = frozenset()
    scope: frozenset[str] | None = None
    read_only: bool = False
    authenticated: bool = True
    token_id: str | None = None
    tier: str = "bronze"
    rate_limit: str = ""  # a `limits` string such as "50/second"; "" = the server's default
    rows_per_day: int | None = None

    def role_for(self, model: str | None = None) -> Role | None:
        """The highest role this principal holds on ``model`` (globally when ``None``)."""
        if model is not None and self.scope is not None and model not in self.scope:
            return None
        role = self.global_role
        if model is not None:
            granted = self.model_roles.get(model)
            if granted is not None and (role is None or granted > role):
                role = granted
        return role

    def allows(self, action: Action, model: str | None = None) -> bool:
        """Whether this principal may do ``action`` (on ``model``, or anywhere when ``None``)."""
        if self.read_only and action not in _READ_ONLY_ACTIONS:
            return False
        if model is None and self.scope is not None and action is not Action.READ:
            return False  # a scoped token does nothing outside its models
        role = self.role_for(model)
        return role is not None and role >= action.needs

    def can_see(self, model: str) -> bool:
        """Whether ``model`` appears to this principal at all (lists filter by this)."""
        return self.allows(Action.READ, model)

    @property
    def sees_everything(self) -> bool:
        """Whether lists need no filtering: a global viewer role and no token scope."""
        return self.scope is None and self.global_role is not None


SYSTEM = Principal(name="system", global_role=Role.ADMIN)
ANONYMOUS = Principal(name="anonymous", authenticated=False)

_CURRENT: ContextVar[Principal] = ContextVar("corral_principal", default=SYSTEM)


def current() -> Principal:
    """The principal of the running call (``SYSTEM`` outside any request)."""
    return _CURRENT.get()


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Run the block as ``principal`` (the front door wraps each request in this)."""
    token = _CURRENT.set(principal)
    try:
        yield principal
    finally:
        _CURRENT.reset(token)


def require(action: Action, model: str | None = None) -> Principal:
    """The current principal, if it may do ``action`` on ``model``; else raise.

    Raises ``Unauthenticated`` when the caller gave no valid credentials and the
    anonymous role is not enough, ``PermissionDenied`` when an identified caller lacks
    the role.
    """
    principal = _CURRENT.get()
    if principal.allows(action, model):
        return principal
    target = f" on model '{model}'" if model is not None else ""
    if not principal.authenticated:
        raise Unauthenticated(
            f"{action.name.lower()}{target} needs a token (Authorization: Bearer …) "
            f"or a login with the {action.needs.label} role"
        )
    if principal.read_only and action not in _READ_ONLY_ACTIONS:
        raise PermissionDenied(
            f"{principal.name}'s token is read-only: it may not {action.name.lower()}{target}"
        )
    if principal.scope is not None and (model is None or model not in principal.scope):
        where = f"model '{model}'" if model is not None else "anything beyond its models"
        raise PermissionDenied(f"{principal.name}'s token is scoped and does not cover {where}")
    raise PermissionDenied(f"{principal.name} needs the {action.needs.label} role{target}")
