"""Users, teams, grants and API tokens: the entities of identity and the port that keeps them.

``corral.security.identity.IdentityService`` applies the rules (who may manage what,
hashing, token secrets, the cache of authenticated principals); a store implementing
:class:`IdentityStore` keeps the rows (``corral.store.sql`` on SQLite or PostgreSQL).
Users and teams share one namespace: a grant's subject is either.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from corral.access import Role
from corral.errors import AlreadyExists, NotFound
from corral.registry.audit import AuditDraft

__all__ = [
    "Credentials",
    "Grant",
    "IdentityStore",
    "SubjectExists",
    "SubjectKind",
    "SubjectNotFound",
    "Team",
    "Token",
    "TokenCredentials",
    "User",
    "UserAccess",
]

SubjectKind = Literal["user", "team"]
TokenKind = Literal["api", "session"]


@dataclass(frozen=True, slots=True)
class User:
    """A person or a service account; ``has_password`` when it may sign in to the web pages."""

    name: str
    email: str
    created_at: datetime
    disabled: bool
    has_password: bool


@dataclass(frozen=True, slots=True)
class Team:
    """A named group of users; a grant to the team reaches each member."""

    name: str
    members: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Grant:
    """``role`` for ``subject`` (a user or a team) on ``model``, or on every model when ``None``."""

    id: int
    subject: str
    subject_kind: str
    role: Role
    model: str | None
    created_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class Token:
    """An API token (or a web session) of ``user``, without its secret.

    ``models`` limits it to those models (``None``: every model the user may use);
    ``read_only`` to reading and predicting; ``tier``, ``rate_limit`` and ``rows_per_day``
    drive admission and quotas.
    """

    id: str
    user: str
    name: str
    kind: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    models: tuple[str, ...] | None
    read_only: bool
    tier: str
    rate_limit: str
    rows_per_day: int | None


@dataclass(frozen=True, slots=True)
class TokenCredentials:
    """What authenticating a token needs: the token, its secret's hash, its user's state."""

    token: Token
    secret_hash: str
    user_disabled: bool


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user's password hash (``None``: it has no password) and whether it is disabled."""

    password_hash: str | None
    disabled: bool


@dataclass(frozen=True, slots=True)
class UserAccess:
    """Everything a user's roles derive from, read in one transaction."""

    teams: tuple[str, ...]
    grants: tuple[Grant, ...]
    owned_models: tuple[str, ...]


class SubjectNotFound(NotFound):
    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"there is no {kind} '{name}'")


class SubjectExists(AlreadyExists):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"'{name}' is taken: users and teams share one namespace, pick another name"
        )


class IdentityStore(Protocol):
    """Users, teams, grants and tokens. Every method is one transaction; inside the store's
    ``audited()`` block, writes join its transaction and audit events."""

    def generation(self) -> int:
        """A number every write increases (identities and the registry's models alike)."""
        ...

    def audited(self) -> AbstractContextManager[list[AuditDraft]]:
        """One write transaction that writes inside it join, with its audit events."""
        ...

    # -- users ------------------------------------------------------------------------
    def count_users(self) -> int: ...

    def count_admins(self) -> int:
        """Enabled users holding the global admin role, directly or through a team; inside
        ``audited()``, as that transaction's writes leave them."""
        ...

    def create_user(
        self, name: str, email: str, password_hash: str | None, at: datetime
    ) -> User: ...

    def get_user(self, name: str) -> User: ...

    def list_users(self) -> list[User]: ...

    def user_credentials(self, name: str) -> Credentials | None: ...

    def update_user(
        self,
        name: str,
        *,
        email: str | None = None,
        password_hash: str | None = None,
        disabled: bool | None = None,
    ) -> User: ...

    def delete_user(self, name: str) -> None: ...

    def user_access(self, name: str) -> UserAccess:
        """The user's teams, the grants to it or its teams, and the models they own."""
        ...

    # -- teams ------------------------------------------------------------------------
    def create_team(self, name: str, at: datetime) -> Team: ...

    def get_team(self, name: str) -> Team: ...

    def list_teams(self) -> list[Team]: ...

    def delete_team(self, name: str) -> None: ...

    def set_membership(self, team: str, user: str, member: bool) -> Team: ...

    # -- grants -----------------------------------------------------------------------
    def put_grant(
        self,
        subject: str,
        kind: SubjectKind,
        role: Role,
        model: str | None,
        at: datetime,
        created_by: str,
    ) -> tuple[Grant | None, Grant]:
        """Grant ``role``; a grant to the same subject on the same model is replaced.
        Returns (the grant before, if any; the grant after)."""
        ...

    def get_grant(self, id: int) -> Grant: ...

    def delete_grant(self, id: int) -> None: ...

    def list_grants(
        self, model: str | None = None, subjects: Sequence[str] | None = None
    ) -> list[Grant]: ...

    def model_owner(self, model: str) -> str | None:
        """The owner of ``model`` (``None`` when there is no such model)."""
        ...

    # -- tokens -----------------------------------------------------------------------
    def create_token(self, token: Token, secret_hash: str) -> Token: ...

    def get_token(self, id: str) -> Token: ...

    def token_credentials(self, id: str) -> TokenCredentials | None: ...

    def list_tokens(self, user: str | None) -> list[Token]: ...

    def revoke_token(self, id: str, at: datetime) -> Token: ...
