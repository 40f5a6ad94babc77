"""The identity verbs of ``Client``: users, teams, grants and tokens, locally and over REST.

Both modes return the identity service's entities (``User``, ``Team``, ``Grant``,
``Token``). On a local home the calls run as the system principal (whoever can read the
database files is an admin there); against a server, as the token's user.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from corral.access import Principal, Role, current
from corral.errors import InvalidArgument

if TYPE_CHECKING:
    from corral.security.identity import Grant, IdentityService, Team, Token, User


def _seg(value: str | int) -> str:
    return quote(str(value), safe="")


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _role(role: Role | str) -> Role:
    if isinstance(role, Role):
        return role
    try:
        return Role.parse(role)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def _user(data: dict[str, Any]) -> User:
    from corral.security.identity import User

    return User(
        name=data["name"],
        email=data["email"],
        created_at=datetime.fromisoformat(data["created_at"]),
        disabled=data["disabled"],
        has_password=data["has_password"],
    )


def _team(data: dict[str, Any]) -> Team:
    from corral.security.identity import Team

    return Team(
        name=data["name"],
        members=tuple(data["members"]),
        created_at=datetime.fromisoformat(data["created_at"]),
    )


def _grant(data: dict[str, Any]) -> Grant:
    from corral.security.identity import Grant

    return Grant(
        id=data["id"],
        subject=data["subject"],
        subject_kind=data["subject_kind"],
        role=Role.parse(data["role"]),
        model=data["model"],
        created_at=datetime.fromisoformat(data["created_at"]),
        created_by=data["created_by"],
    )


def _token(data: dict[str, Any]) -> Token:
    from corral.security.identity import Token

    models = data["models"]
    return Token(
        id=data["id"],
        user=data["user"],
        name=data["name"],
        kind=data["kind"],
        created_at=datetime.fromisoformat(data["created_at"]),
        expires_at=_when(data["expires_at"]),
        revoked_at=_when(data["revoked_at"]),
        models=tuple(models) if models is not None else None,
        read_only=data["read_only"],
        tier=data["tier"],
        rate_limit=data["rate_limit"],
        rows_per_day=data["rows_per_day"],
    )


def describe(principal: Principal) -> dict[str, Any]:
    """A principal as ``whoami`` answers it (the same JSON as ``GET /api/v1/me``)."""
    return {
        "name": principal.name,
        "authenticated": principal.authenticated,
        "global_role": principal.global_role.label if principal.global_role else None,
        "model_roles": {m: Role(r).label for m, r in sorted(principal.model_roles.items())},
        "teams": sorted(principal.teams),
        "token_id": principal.token_id,
        "scope": sorted(principal.scope) if principal.scope is not None else None,
        "read_only": principal.read_only,
        "tier": principal.tier,
        "rate_limit": principal.rate_limit,
        "rows_per_day": principal.rows_per_day,
    }


class IdentityVerbs:
    """Mixed into ``Client``: it provides ``_corral`` (local) and ``_http`` (remote)."""

    _corral: Any
    _http: Any

    # -- transport ------------------------------------------------------------------------

    @property
    def _identity(self) -> IdentityService | None:
        return self._corral.identity if self._corral is not None else None

    def _identity_call(self, method: str, url: str, **kwargs: Any) -> Any:
        from corral.client._remote import api_call

        return api_call(self._http, method, url, **kwargs)

    # -- who am I -------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """Who this client acts as: name, global and per-model roles, teams, token limits."""
        if self._corral is not None:
            return describe(current())
        return self._identity_call("GET", "/me")  # type: ignore[no-any-return]

    # -- users ----------------------------------------------------------------------------

    def create_user(self, name: str, *, password: str | None = None, email: str = "") -> User:
        """Create a user (an admin's job); a password lets it log in to the web pages."""
        if (svc := self._identity) is not None:
            return svc.create_user(name, password=password, email=email)
        body = {"name": name, "password": password, "email": email}
        return _user(self._identity_call("POST", "/users", json=body))

    def get_user(self, name: str) -> User:
        """One user (yourself, or anyone for an admin)."""
        if (svc := self._identity) is not None:
            return svc.get_user(name)
        return _user(self._identity_call("GET", f"/users/{_seg(name)}"))

    def list_users(self) -> list[User]:
        """Every user, by name."""
        if (svc := self._identity) is not None:
            return list(svc.list_users())
        return [_user(u) for u in self._identity_call("GET", "/users")]

    def update_user(
        self,
        name: str,
        *,
        password: str | None = None,
        email: str | None = None,
        disabled: bool | None = None,
    ) -> User:
        """Change a user's password, email or whether it is disabled (only what is given)."""
        if (svc := self._identity) is not None:
            if password is not None:
                svc.set_password(name, password)
            if email is not None:
                svc.set_email(name, email)
            if disabled is not None:
                (svc.disable_user if disabled else svc.enable_user)(name)
            return svc.get_user(name)
        body = {
            k: v
            for k, v in (("password", password), ("email", email), ("disabled", disabled))
            if v is not None
        }
        return _user(self._identity_call("PATCH", f"/users/{_seg(name)}", json=body))

    def delete_user(self, name: str) -> None:
        """Delete a user; its tokens and grants are revoked with it."""
        if (svc := self._identity) is not None:
            svc.delete_user(name)
            return
        self._identity_call("DELETE", f"/users/{_seg(name)}")

    # -- teams ----------------------------------------------------------------------------

    def create_team(self, name: str) -> Team:
        """Create a team (users and teams share one namespace)."""
        if (svc := self._identity) is not None:
            return svc.create_team(name)
        return _team(self._identity_call("POST", "/teams", json={"name": name}))

    def delete_team(self, name: str) -> None:
        """Delete a team (its grants go with it)."""
        if (svc := self._identity) is not None:
            svc.delete_team(name)
            return
        self._identity_call("DELETE", f"/teams/{_seg(name)}")

    def add_member(self, team: str, user: str) -> Team:
        """Add ``user`` to ``team``; the team after."""
        if (svc := self._identity) is not None:
            svc.add_member(team, user)
            return svc.get_team(team)
        return _team(self._identity_call("PUT", f"/teams/{_seg(team)}/members/{_seg(user)}"))

    def remove_member(self, team: str, user: str) -> Team:
        """Take ``user`` out of ``team``; the team after."""
        if (svc := self._identity) is not None:
            svc.remove_member(team, user)
            return svc.get_team(team)
        return _team(self._identity_call("DELETE", f"/teams/{_seg(team)}/members/{_seg(user)}"))

    def list_teams(self) -> list[Team]:
        """Every team with its members."""
        if (svc := self._identity) is not None:
            return list(svc.list_teams())
        return [_team(t) for t in self._identity_call("GET", "/teams")]

    # -- grants ---------------------------------------------------------------------------

    def grant(
        self,
        role: Role | str,
        *,
        user: str | None = None,
        team: str | None = None,
        model: str | None = None,
    ) -> Grant:
        """Grant ``role`` to a user or a team, on ``model`` (or, without one, every model)."""
        parsed = _role(role)
        if (svc := self._identity) is not None:
            return svc.grant(parsed, user=user, team=team, model=model)
        body = {"role": parsed.label, "user": user, "team": team, "model": model}
        return _grant(self._identity_call("POST", "/grants", json=body))

    def revoke_grant(self, id: int) -> None:
        """Remove a grant."""
        if (svc := self._identity) is not None:
            svc.revoke_grant(id)
            return
        self._identity_call("DELETE", f"/grants/{_seg(id)}")

    def list_grants(self, *, model: str | None = None, subject: str | None = None) -> list[Grant]:
        """Grants (on ``model``, or to ``subject``: a user or a team)."""
        if (svc := self._identity) is not None:
            return list(svc.list_grants(model=model, subject=subject))
        params = {k: v for k, v in (("model", model), ("subject", subject)) if v is not None}
        return [_grant(g) for g in self._identity_call("GET", "/grants", params=params)]

    # -- tokens ---------------------------------------------------------------------------

    def create_token(
        self,
        user: str | None = None,
        *,
        name: str,
        expires_in: timedelta | None = None,
        models: Sequence[str] | None = None,
        read_only: bool = False,
        tier: str = "bronze",
        rate_limit: str = "",
        rows_per_day: int | None = None,
    ) -> tuple[Token, str]:
        """An API token (for ``user``, default yourself) and its secret, shown only now."""
        if (svc := self._identity) is not None:
            made = svc.create_token(
                user,
                name=name,
                expires_in=expires_in,
                models=models,
                read_only=read_only,
                tier=tier,
                rate_limit=rate_limit,
                rows_per_day=rows_per_day,
            )
            return made
        seconds = None
        if expires_in is not None:
            seconds = int(expires_in.total_seconds())
            if seconds < 1:
                raise InvalidArgument(f"a token must expire in the future, not in {expires_in}")
        body = {
            "user": user,
            "name": name,
            "expires_in_seconds": seconds,
            "models": list(models) if models is not None else None,
            "read_only": read_only,
            "tier": tier,
            "rate_limit": rate_limit,
            "rows_per_day": rows_per_day,
        }
        data = self._identity_call("POST", "/tokens", json=body)
        secret = data.pop("secret")
        return _token(data), secret

    def list_tokens(self, user: str | None = None) -> list[Token]:
        """Tokens (yours, or ``user``'s for an admin), without their secrets."""
        if (svc := self._identity) is not None:
            return list(svc.list_tokens(user))
        params = {"user": user} if user is not None else {}
        return [_token(t) for t in self._identity_call("GET", "/tokens", params=params)]

    def revoke_token(self, id: str) -> None:
        """Revoke a token: it stops working at once (within a poll interval elsewhere)."""
        if (svc := self._identity) is not None:
            svc.revoke_token(id)
            return
        self._identity_call("DELETE", f"/tokens/{_seg(id)}")
