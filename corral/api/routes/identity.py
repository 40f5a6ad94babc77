"""Identity: who am I, users, teams, grants and API tokens.

The routes parse and reply; the identity service decides who may do what (an admin for
users, teams and others' tokens; a model's maintainer for grants on it; anyone for their
own tokens). A token's secret appears once, in the reply that creates it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from corral.access import Principal, Role, current
from corral.api.errors import API_ERRORS
from corral.errors import InvalidArgument
from corral.registry.values import MAX_NUMBER
from corral.security.identity import MAX_TOKEN_LIFETIME

if TYPE_CHECKING:
    from corral.security.identity import Grant, IdentityService, Team, Token, User

router = APIRouter(prefix="/api/v1", tags=["identity"], responses=API_ERRORS)

Tier = Literal["gold", "silver", "bronze"]
MAX_TOKEN_SECONDS = int(MAX_TOKEN_LIFETIME.total_seconds())
_NAME = Field(min_length=1, max_length=64, description="lower case: a-z, 0-9, '.', '_', '-'")
_PASSWORD = Field(default=None, max_length=1024, description="at least 8 characters")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- bodies -----------------------------------------------------------------------------------


class UserCreate(_Body):
    name: str = _NAME
    password: str | None = _PASSWORD
    email: str = Field(default="", max_length=320)


class UserUpdate(_Body):
    password: str | None = _PASSWORD
    email: str | None = Field(default=None, max_length=320)
    disabled: bool | None = None


class UserRead(BaseModel):
    name: str
    email: str
    created_at: datetime
    disabled: bool
    has_password: bool

    @classmethod
    def of(cls, user: User) -> UserRead:
        return cls(
            name=user.name,
            email=user.email,
            created_at=user.created_at,
            disabled=user.disabled,
            has_password=user.has_password,
        )


class TeamCreate(_Body):
    name: str = _NAME


class TeamRead(BaseModel):
    name: str
    members: list[str]
    created_at: datetime

    @classmethod
    def of(cls, team: Team) -> TeamRead:
        return cls(name=team.name, members=list(team.members), created_at=team.created_at)


class GrantCreate(_Body):
    role: str = Field(max_length=32, description="viewer, consumer, contributor, maintainer, admin")
    user: str | None = Field(default=None, max_length=64)
    team: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=10_000, description="none: every model")


class GrantRead(BaseModel):
    id: int
    subject: str
    subject_kind: str
    role: str
    model: str | None
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, grant: Grant) -> GrantRead:
        return cls(
            id=grant.id,
            subject=grant.subject,
            subject_kind=grant.subject_kind,
            role=Role(grant.role).label,
            model=grant.model,
            created_at=grant.created_at,
            created_by=grant.created_by,
        )


class TokenCreate(_Body):
    user: str | None = Field(default=None, max_length=64, description="default: yours")
    name: str = Field(min_length=1, max_length=200)
    expires_in_seconds: int | None = Field(
        default=None, ge=1, le=MAX_TOKEN_SECONDS, description="none: never expires"
    )
    models: list[str] | None = Field(default=None, description="none: every model")
    read_only: bool = False
    tier: Tier = "bronze"
    rate_limit: str = Field(default="", max_length=100, description='e.g. "50/second"')
    rows_per_day: int | None = Field(default=None, ge=1)


class TokenRead(BaseModel):
    """A token without its secret (nor its hash): the secret is shown once, at creation."""

    id: str
    user: str
    name: str
    kind: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    models: list[str] | None
    read_only: bool
    tier: str
    rate_limit: str
    rows_per_day: int | None

    @classmethod
    def of(cls, token: Token) -> TokenRead:
        return cls(**_token_fields(token))


class TokenCreated(TokenRead):
    secret: str = Field(description="shown only in this reply: store it now")


class MeRead(BaseModel):
    """The caller: its roles (globally and per model), teams, and its token's limits."""

    name: str
    authenticated: bool
    global_role: str | None
    model_roles: dict[str, str]
    teams: list[str]
    token_id: str | None
    scope: list[str] | None
    read_only: bool
    tier: str
    rate_limit: str
    rows_per_day: int | None

    @classmethod
    def of(cls, principal: Principal) -> MeRead:
        return cls(
            name=principal.name,
            authenticated=principal.authenticated,
            global_role=principal.global_role.label if principal.global_role else None,
            model_roles={m: Role(r).label for m, r in sorted(principal.model_roles.items())},
            teams=sorted(principal.teams),
            token_id=principal.token_id,
            scope=sorted(principal.scope) if principal.scope is not None else None,
            read_only=principal.read_only,
            tier=principal.tier,
            rate_limit=principal.rate_limit,
            rows_per_day=principal.rows_per_day,
        )


def _token_fields(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "user": token.user,
        "name": token.name,
        "kind": token.kind,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "models": list(token.models) if token.models is not None else None,
        "read_only": token.read_only,
        "tier": token.tier,
        "rate_limit": token.rate_limit,
        "rows_per_day": token.rows_per_day,
    }


def parse_role(text: str) -> Role:
    """A role from its name; an unknown one is an invalid argument naming the roles."""
    try:
        return Role.parse(text)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


# What FastAPI sees of the service (it evaluates parameter annotations at import).
Service = Any


# Async on purpose, like corral.api.deps: a plain `def` would cost a thread hop per request.
async def identity(request: Request) -> Service:
    service: IdentityService = request.app.state.corral.identity
    return service


def _json(model: BaseModel | list[Any], status: int = 200) -> Response:
    if isinstance(model, list):
        body = "[" + ",".join(item.model_dump_json() for item in model) + "]"
    else:
        body = model.model_dump_json()
    return Response(body, status_code=status, media_type="application/json")


# -- who am I ---------------------------------------------------------------------------------


@router.get("/me", response_model=MeRead)
async def me() -> Response:
    """The caller as the server sees it: name, roles, teams and its token's limits."""
    return _json(MeRead.of(current()))


# -- users ------------------------------------------------------------------------------------


@router.post("/users", status_code=201, response_model=UserRead)
def create_user(body: UserCreate, svc: Service = Depends(identity)) -> Response:
    user = svc.create_user(body.name, password=body.password, email=body.email)
    return _json(UserRead.of(user), 201)


@router.get("/users", response_model=list[UserRead])
def list_users(svc: Service = Depends(identity)) -> Response:
    return _json([UserRead.of(u) for u in svc.list_users()])


@router.get("/users/{name}", response_model=UserRead)
def get_user(name: str, svc: Service = Depends(identity)) -> Response:
    return _json(UserRead.of(svc.get_user(name)))


@router.patch("/users/{name}", response_model=UserRead)
def update_user(name: str, body: UserUpdate, svc: Service = Depends(identity)) -> Response:
    """Change a user's password, email or whether it is disabled (only the fields given)."""
    return _json(
        UserRead.of(apply_user_update(svc, name, body.password, body.email, body.disabled))
    )


def apply_user_update(
    svc: IdentityService,
    name: str,
    password: str | None,
    email: str | None,
    disabled: bool | None,
) -> User:
    """Apply the given changes to a user through the service; the user as it is after."""
    if password is not None:
        svc.set_password(name, password)
    if email is not None:
        svc.set_email(name, email)
    if disabled is True:
        svc.disable_user(name)
    elif disabled is False:
        svc.enable_user(name)
    return svc.get_user(name)


@router.delete("/users/{name}", status_code=204)
def delete_user(name: str, svc: Service = Depends(identity)) -> Response:
    """Delete a user; its tokens and grants are revoked with it."""
    svc.delete_user(name)
    return Response(status_code=204)


# -- teams ------------------------------------------------------------------------------------


@router.post("/teams", status_code=201, response_model=TeamRead)
def create_team(body: TeamCreate, svc: Service = Depends(identity)) -> Response:
    return _json(TeamRead.of(svc.create_team(body.name)), 201)


@router.get("/teams", response_model=list[TeamRead])
def list_teams(svc: Service = Depends(identity)) -> Response:
    return _json([TeamRead.of(t) for t in svc.list_teams()])


@router.delete("/teams/{name}", status_code=204)
def delete_team(name: str, svc: Service = Depends(identity)) -> Response:
    svc.delete_team(name)
    return Response(status_code=204)


@router.put("/teams/{name}/members/{user}", response_model=TeamRead)
def add_member(name: str, user: str, svc: Service = Depends(identity)) -> Response:
    """Add a user to a team (adding a member again changes nothing); the team after."""
    svc.add_member(name, user)
    return _json(TeamRead.of(svc.get_team(name)))


@router.delete("/teams/{name}/members/{user}", response_model=TeamRead)
def remove_member(name: str, user: str, svc: Service = Depends(identity)) -> Response:
    """Take a user out of a team; the team after."""
    svc.remove_member(name, user)
    return _json(TeamRead.of(svc.get_team(name)))


# -- grants -----------------------------------------------------------------------------------


@router.post("/grants", status_code=201, response_model=GrantRead)
def create_grant(body: GrantCreate, svc: Service = Depends(identity)) -> Response:
    """Grant a role to a user or a team, on one model or (without ``model``) on every one."""
    made = svc.grant(parse_role(body.role), user=body.user, team=body.team, model=body.model)
    return _json(GrantRead.of(made), 201)


@router.get("/grants", response_model=list[GrantRead])
def list_grants(
    model: str | None = Query(default=None, max_length=10_000, description="only this model's"),
    subject: str | None = Query(default=None, max_length=64, description="a user or team"),
    svc: Service = Depends(identity),
) -> Response:
    return _json([GrantRead.of(g) for g in svc.list_grants(model=model, subject=subject)])


@router.delete("/grants/{grant_id}", status_code=204)
def revoke_grant(
    grant_id: int = Path(ge=1, le=MAX_NUMBER), svc: Service = Depends(identity)
) -> Response:
    svc.revoke_grant(grant_id)
    return Response(status_code=204)


# -- tokens -----------------------------------------------------------------------------------


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, svc: Service = Depends(identity)) -> Response:
    """Create an API token; the reply holds its secret, which is never shown again."""
    expires = timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds else None
    token, secret = svc.create_token(
        body.user,
        name=body.name,
        expires_in=expires,
        models=body.models,
        read_only=body.read_only,
        tier=body.tier,
        rate_limit=body.rate_limit,
        rows_per_day=body.rows_per_day,
    )
    created = TokenCreated(**_token_fields(token), secret=secret)
    response = _json(created, 201)
    response.headers["Cache-Control"] = "no-store"  # the secret must not sit in any cache
    return response


@router.get("/tokens", response_model=list[TokenRead])
def list_tokens(
    user: str | None = Query(default=None, max_length=64, description="default: yours"),
    svc: Service = Depends(identity),
) -> Response:
    """Tokens (yours, or ``user``'s for an admin), without their secrets."""
    return _json([TokenRead.of(t) for t in svc.list_tokens(user)])


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: str, svc: Service = Depends(identity)) -> Response:
    svc.revoke_token(token_id)
    return Response(status_code=204)
