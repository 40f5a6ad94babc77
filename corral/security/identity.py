"""Identity: users (argon2-hashed passwords), teams, role grants, API tokens and web sessions.

A token's secret reads ``crl_<id>_<random>``: the id finds its row, and only the SHA-256 of
the whole secret is stored (a 256-bit random secret needs no slow hash; passwords, which
people choose, get argon2). ``authenticate`` turns a secret into a ``Principal`` with every
role it resolves to; principals are cached per token, so the hot path costs a hash and a
dictionary lookup. The cache drops everything when this process changes identities and,
through ``refresh`` (polled by the server), when another process did: the store's
generation changed. Expiry is checked on every call, cached or not.

Who may do what is decided here, not in the routes: an admin manages users and teams and
grants anywhere; a model's maintainer (or owner) grants roles on that model; every signed
in user manages their own tokens. Every change is written to the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from corral.access import SYSTEM, Action, Principal, Role, current, require
from corral.accounts import Grant, IdentityStore, SubjectKind, Team, Token, User
from corral.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from corral.registry.audit import Recorder
from corral.registry.permissions import require_owner_or, require_somewhere

__all__ = [
    "MAX_TOKEN_LIFETIME",
    "TIERS",
    "Grant",
    "IdentityService",
    "Team",
    "Token",
    "User",
    "parse_secret",
]

TIERS = ("bronze", "silver", "gold")
BOOTSTRAP_USER = "admin"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_TOKEN_LIFETIME = timedelta(days=3650)  # longer is "never": leave the expiry out
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_SECRET = re.compile(r"crl_([0-9a-f]{12})_([A-Za-z0-9_-]{20,128})")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_MAX_CACHED = 10_000
_MALFORMED = (
    "the Bearer token is malformed: Corral tokens read crl_<12 hex digits>_<secret>; "
    "copy the whole secret shown when the token was made"
)
_UNKNOWN = (
    "the token is not known here: it was never issued by this server, or its user was deleted"
)
_WRONG_LOGIN = "wrong user name or password"
_LAST_ADMIN = (
    "that would leave no enabled user with the admin role: make someone else admin first "
    "(corral grant admin --user NAME)"
)


def parse_secret(secret: str) -> str:
    """The token id of a well-formed secret; raise ``Unauthenticated`` otherwise."""
    match = _SECRET.fullmatch(secret)
    if match is None:
        raise Unauthenticated(_MALFORMED)
    return match.group(1)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Entry:
    """A cached answer for one token id: its principal (or the refusal) and what checks it."""

    digest: str
    principal: Principal | None
    refusal: str
    expires_at: datetime | None
    name: str
    generation: int


class IdentityService:
    """Users, teams, grants and tokens on an ``IdentityStore``; see the module docstring."""

    def __init__(
        self,
        store: IdentityStore,
        *,
        validate_rate: Callable[[str], None],
        hasher: PasswordHasher | None = None,
        session_hours: float = 12.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._hasher = hasher or PasswordHasher()
        self._session = timedelta(hours=session_hours)
        self._clock = clock
        self._validate_rate = validate_rate
        self._cache: dict[str, _Entry] = {}
        # Secrets whose hash matched, so that the next request with one skips parsing and
        # hashing it (in situ, most of a token check's cost). Process memory only, like the
        # requests that carry them; the store keeps nothing but hashes.
        self._verified: dict[str, _Entry] = {}
        self._seen = -1  # the store generation the cache is known to be current with
        self._lock = threading.Lock()
        # Verified against when a user is unknown, so that a wrong name costs what a wrong
        # password does (no telling which names exist from the time a login takes).
        self._dummy_hash = ""  # made on the first login

    # -- authentication -----------------------------------------------------------------

    def authenticate(self, secret: str) -> Principal:
        """The principal a token (or session) secret stands for; raise ``Unauthenticated``."""
        entry = self._verified.get(secret)
        if entry is None or entry.generation < self._seen:
            entry = self._verify(secret)
        if entry.principal is None:
            raise Unauthenticated(entry.refusal)
        if entry.expires_at is not None and self._clock() >= entry.expires_at:
            raise Unauthenticated(
                f"the token '{entry.name}' expired at {entry.expires_at:%Y-%m-%d %H:%M:%S} UTC: "
                "make a new one (corral token create)"
            )
        return entry.principal

    def _verify(self, secret: str) -> _Entry:
        """The entry of the secret's token, once its hash matches the stored one."""
        token_id = parse_secret(secret)
        digest = _digest(secret)
        entry = self._cache.get(token_id)
        if entry is None or entry.generation < self._seen:
            entry = self._load(token_id)
        if not hmac.compare_digest(entry.digest, digest):
            raise Unauthenticated(_UNKNOWN)
        if entry.principal is not None:
            with self._lock:
                if len(self._verified) >= _MAX_CACHED:
                    self._verified.clear()
                if entry.generation >= self._seen:
                    self._verified[secret] = entry
        return entry

    def _load(self, token_id: str) -> _Entry:
        # Read first: a write after this read makes the entry older than what ``refresh``
        # will see, so it is loaded again rather than trusted.
        generation = self._store.generation()
        found = self._store.token_credentials(token_id)
        if found is None:
            entry = _Entry("", None, _UNKNOWN, None, "", generation)
            self._remember(token_id, entry)
            return entry
        token = found.token
        refusal = ""
        principal: Principal | None = None
        access = self._store.user_access(token.user)
        if token.revoked_at is not None:
            refusal = (
                f"the token '{token.name}' was revoked at {token.revoked_at:%Y-%m-%d %H:%M:%S} "
                "UTC: make a new one (corral token create)"
            )
        elif found.user_disabled:
            refusal = f"user '{token.user}' is disabled: an admin may enable it again"
        else:
            principal = _principal(token, access.teams, access.grants, access.owned_models)
        entry = _Entry(
            found.secret_hash,
            principal,
            refusal,
            token.expires_at,
            token.name,
            generation,
        )
        self._remember(token_id, entry)
        return entry

    def _remember(self, token_id: str, entry: _Entry) -> None:
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            if entry.generation >= self._seen:
                self._cache[token_id] = entry

    def refresh(self) -> None:
        """Forget cached principals if identities (or model owners) changed anywhere."""
        generation = self._store.generation()
        if generation != self._seen:
            with self._lock:
                self._seen = generation
                self._cache.clear()
                self._verified.clear()

    def _changed(self) -> None:
        """After a write of this process: what the cache holds may be stale."""
        self.refresh()

    @contextmanager
    def _audit(self) -> Iterator[Recorder]:
        with self._store.audited() as drafts:
            admins = self._store.count_admins()
            yield Recorder(drafts, current().name, self._clock)
            # Raising here rolls the write back: a server must keep someone who can run it.
            if admins and not self._store.count_admins():
                raise Conflict(_LAST_ADMIN)
        self._changed()

    # -- first start, login, logout -----------------------------------------------------

    def bootstrap_admin(self) -> str | None:
        """On a store without users: create ``admin`` (global admin) and return its token.

        Returns ``None`` when any user exists (a second start, or another worker won).
        """
        if self._store.count_users() > 0:
            return None
        now = self._clock()
        try:
            with self._audit() as record:
                user = self._store.create_user(BOOTSTRAP_USER, "", None, now)
                _, grant = self._store.put_grant(
                    BOOTSTRAP_USER, "user", Role.ADMIN, None, now, "system"
                )
                token, secret = self._new_token(BOOTSTRAP_USER, "first start", "api", None)
                record("user.create", f"user:{user.name}", None, user)
                record("grant.create", f"grant:{grant.id}", None, grant)
                record("token.create", f"user:{user.name}/token:{token.id}", None, token)
        except AlreadyExists:  # another process bootstrapped first
            return None
        return secret

    def login(self, name: str, password: str) -> tuple[Token, str]:
        """A web session for ``name`` if ``password`` is right: (token, secret)."""
        credentials = self._store.user_credentials(name) if _NAME.fullmatch(name) else None
        stored = credentials.password_hash if credentials is not None else None
        if not stored and not self._dummy_hash:
            self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        try:
            self._hasher.verify(stored or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            raise Unauthenticated(_WRONG_LOGIN) from None
        if credentials is None or stored is None:
            raise Unauthenticated(_WRONG_LOGIN)
        if credentials.disabled:
            raise Unauthenticated(f"user '{name}' is disabled: ask an admin to enable it")
        with self._audit() as record:
            if self._hasher.check_needs_rehash(stored):
                self._store.update_user(name, password_hash=self._hasher.hash(password))
            token, secret = self._new_token(name, "web session", "session", self._session)
            record("session.create", f"user:{name}/token:{token.id}", None, token)
        return token, secret

    def logout(self, secret: str) -> None:
        """End the session (or revoke the token) whose secret this is."""
        try:
            token_id = parse_secret(secret)
        except Unauthenticated:
            raise NotFound("there is no such session") from None
        found = self._store.token_credentials(token_id)
        if found is None or not hmac.compare_digest(found.secret_hash, _digest(secret)):
            raise NotFound("there is no such session")
        if found.token.revoked_at is None:
            with self._audit() as record:
                after = self._store.revoke_token(token_id, self._clock())
                record("session.end", f"user:{after.user}/token:{token_id}", found.token, after)

    # -- users --------------------------------------------------------------------------

    def create_user(self, name: str, *, password: str | None = None, email: str = "") -> User:
        require(Action.ADMIN)
        _check_name(name, "user")
        email = _check_email(email)
        hashed = self._hash(password) if password is not None else None
        with self._audit() as record:
            user = self._store.create_user(name, email, hashed, self._clock())
            record("user.create", f"user:{name}", None, user)
        return user

    def get_user(self, name: str) -> User:
        _require_self_or_admin(name)
        return self._store.get_user(name)

    def list_users(self) -> list[User]:
        require(Action.ADMIN)
        return self._store.list_users()

    def set_password(self, name: str, password: str) -> User:
        _require_self_or_admin(name, write=True)
        hashed = self._hash(password)
        return self._update(name, "user.password", password_hash=hashed)

    def set_email(self, name: str, email: str) -> User:
        _require_self_or_admin(name, write=True)
        return self._update(name, "user.update", email=_check_email(email))

    def disable_user(self, name: str) -> User:
        require(Action.ADMIN)
        return self._update(name, "user.disable", disabled=True)

    def enable_user(self, name: str) -> User:
        require(Action.ADMIN)
        return self._update(name, "user.enable", disabled=False)

    def _update(self, name: str, action: str, **changes: Any) -> User:
        with self._audit() as record:
            before = self._store.get_user(name)
            after = self._store.update_user(name, **changes)
            record(action, f"user:{name}", before, after)
        return after

    def delete_user(self, name: str) -> None:
        """Delete a user; its tokens, grants and memberships go with it."""
        require(Action.ADMIN)
        with self._audit() as record:
            before = self._store.get_user(name)
            self._store.delete_user(name)
            record("user.delete", f"user:{name}", before, None)

    def _hash(self, password: str) -> str:
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise InvalidArgument(
                f"a password needs between {MIN_PASSWORD} and {MAX_PASSWORD} characters, "
                f"not {len(password)}"
            )
        return self._hasher.hash(password)

    # -- teams --------------------------------------------------------------------------

    def create_team(self, name: str) -> Team:
        require(Action.ADMIN)
        _check_name(name, "team")
        with self._audit() as record:
            team = self._store.create_team(name, self._clock())
            record("team.create", f"team:{name}", None, team)
        return team

    def list_teams(self) -> list[Team]:
        require_somewhere(Action.READ)
        return self._store.list_teams()

    def get_team(self, name: str) -> Team:
        require_somewhere(Action.READ)
        return self._store.get_team(name)

    def delete_team(self, name: str) -> None:
        """Delete a team; its grants go with it (its members stay)."""
        require(Action.ADMIN)
        with self._audit() as record:
            before = self._store.get_team(name)
            self._store.delete_team(name)
            record("team.delete", f"team:{name}", before, None)

    def add_member(self, team: str, user: str) -> None:
        self._membership(team, user, True)

    def remove_member(self, team: str, user: str) -> None:
        self._membership(team, user, False)

    def _membership(self, team: str, user: str, member: bool) -> None:
        require(Action.ADMIN)
        with self._audit() as record:
            before = self._store.get_team(team)
            after = self._store.set_membership(team, user, member)
            if before != after:
                action = "team.add_member" if member else "team.remove_member"
                record(action, f"team:{team}", before, after)

    # -- grants -------------------------------------------------------------------------

    def grant(
        self,
        role: Role,
        *,
        user: str | None = None,
        team: str | None = None,
        model: str | None = None,
    ) -> Grant:
        """Grant ``role`` to a user or a team on ``model`` (every model when ``None``).

        Granting the same subject a role on the same model again replaces the role.
        """
        if (user is None) == (team is None):
            raise InvalidArgument("a grant goes to exactly one of a user or a team")
        if model is not None and not model.strip():
            raise InvalidArgument("a grant's model cannot be blank (leave it out: every model)")
        self._require_granting(role, model)
        kind: SubjectKind = "user" if user is not None else "team"
        subject = user if user is not None else team
        assert subject is not None
        with self._audit() as record:
            before, after = self._store.put_grant(
                subject, kind, role, model, self._clock(), current().name
            )
            record("grant.create", f"grant:{after.id}", before, after)
        return after

    def _require_granting(self, role: Role, model: str | None) -> None:
        if model is None or role is Role.ADMIN:
            require(Action.ADMIN)
            return
        require_owner_or(Action.MAINTAIN, model, lambda: self._store.model_owner(model) or "")

    def revoke_grant(self, id: int) -> None:
        grant = self._store.get_grant(id)
        self._require_granting(grant.role, grant.model)
        with self._audit() as record:
            self._store.delete_grant(id)
            record("grant.delete", f"grant:{id}", grant, None)

    def list_grants(self, *, model: str | None = None, subject: str | None = None) -> list[Grant]:
        """Grants, on ``model`` or to ``subject``; non-admins see the grants to them and
        their teams and the grants on the models they maintain."""
        principal = require_somewhere(Action.READ)
        subjects = [subject] if subject is not None else None
        grants = self._store.list_grants(model=model, subjects=subjects)
        if principal.allows(Action.ADMIN):
            return grants
        mine = {principal.name, *principal.teams}
        return [
            g
            for g in grants
            if g.subject in mine
            or (g.model is not None and principal.allows(Action.MAINTAIN, g.model))
        ]

    # -- tokens -------------------------------------------------------------------------

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
        """An API token for ``user`` (default: the caller) and its secret, shown only now."""
        principal = current()
        owner = self._token_owner(principal, user)
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidArgument("a token needs a name of 1 to 200 characters (what it is for)")
        if expires_in is not None and not timedelta(0) < expires_in <= MAX_TOKEN_LIFETIME:
            raise InvalidArgument(
                f"a token must expire within {MAX_TOKEN_LIFETIME.days} days (or never: "
                f"leave the expiry out), not in {expires_in}"
            )
        if tier not in TIERS:
            raise InvalidArgument(f"unknown tier {tier!r}; tiers are {', '.join(TIERS)}")
        if tier != "bronze" and not principal.allows(Action.ADMIN):
            raise PermissionDenied(f"only an admin may make {tier}-tier tokens")
        if rate_limit:
            self._validate_rate(rate_limit)
        if rows_per_day is not None and rows_per_day < 1:
            raise InvalidArgument(f"rows_per_day must be at least 1, not {rows_per_day}")
        scope = _scope(models)
        if principal.scope is not None and (scope is None or not set(scope) <= principal.scope):
            raise PermissionDenied(
                f"{principal.name}'s token is scoped: a token it makes must name only its models "
                f"({', '.join(sorted(principal.scope))})"
            )
        with self._audit() as record:
            token, secret = self._new_token(
                owner,
                name,
                "api",
                expires_in,
                models=scope,
                read_only=read_only or principal.read_only,
                tier=tier,
                rate_limit=rate_limit,
                rows_per_day=rows_per_day,
            )
            record("token.create", f"user:{owner}/token:{token.id}", None, token)
        return token, secret

    def _token_owner(self, principal: Principal, user: str | None) -> str:
        if not principal.authenticated:
            raise Unauthenticated("making a token needs a signed in user (or a token)")
        if principal.read_only:
            raise PermissionDenied(f"{principal.name}'s token is read-only: it may not make tokens")
        if user is None:
            if principal is SYSTEM:
                raise InvalidArgument(
                    "say whose token this is (--user NAME): acting locally, Corral has no "
                    "signed in user to make it for"
                )
            return principal.name
        if user != principal.name:
            require(Action.ADMIN)
        return user

    def _new_token(
        self, user: str, name: str, kind: str, expires_in: timedelta | None, **fields: Any
    ) -> tuple[Token, str]:
        token_id = secrets.token_hex(6)
        secret = f"crl_{token_id}_{secrets.token_urlsafe(32)}"
        now = self._clock()
        token = Token(
            id=token_id,
            user=user,
            name=name,
            kind=kind,
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
            revoked_at=None,
            models=fields.get("models"),
            read_only=fields.get("read_only", False),
            tier=fields.get("tier", "bronze"),
            rate_limit=fields.get("rate_limit", ""),
            rows_per_day=fields.get("rows_per_day"),
        )
        return self._store.create_token(token, _digest(secret)), secret

    def list_tokens(self, user: str | None = None) -> list[Token]:
        """Tokens and sessions, revoked ones too (yours; ``user``'s or everyone's for an admin)."""
        principal = current()
        if user is None and principal is not SYSTEM:
            if not principal.authenticated:
                raise Unauthenticated("listing tokens needs a signed in user (or a token)")
            user = principal.name
        elif user != principal.name:
            require(Action.ADMIN)
        return self._store.list_tokens(user)

    def revoke_token(self, id: str) -> None:
        """Revoke a token: from the next request on, it authenticates nothing."""
        token = self._store.get_token(id)
        principal = current()
        if token.user != principal.name or not principal.authenticated:
            require(Action.ADMIN)
        if token.revoked_at is not None:
            return
        with self._audit() as record:
            after = self._store.revoke_token(id, self._clock())
            record("token.revoke", f"user:{token.user}/token:{id}", token, after)


# -- helpers ----------------------------------------------------------------------------


def _principal(
    token: Token, teams: Sequence[str], grants: Sequence[Grant], owned: Sequence[str]
) -> Principal:
    global_role: Role | None = None
    model_roles: dict[str, Role] = {}
    for grant in grants:
        if grant.model is None:
            global_role = grant.role if global_role is None else max(global_role, grant.role)
        else:
            held = model_roles.get(grant.model)
            model_roles[grant.model] = grant.role if held is None else max(held, grant.role)
    for model in owned:
        held = model_roles.get(model)
        model_roles[model] = Role.MAINTAINER if held is None else max(held, Role.MAINTAINER)
    return Principal(
        name=token.user,
        global_role=global_role,
        model_roles=model_roles,
        teams=frozenset(teams),
        scope=frozenset(token.models) if token.models is not None else None,
        read_only=token.read_only,
        authenticated=True,
        token_id=token.id,
        tier=token.tier,
        rate_limit=token.rate_limit,
        rows_per_day=token.rows_per_day,
    )


def _require_self_or_admin(name: str, *, write: bool = False) -> None:
    principal = current()
    if principal.authenticated and principal.name == name and principal is not SYSTEM:
        if write and principal.read_only:
            raise PermissionDenied(
                f"{principal.name}'s token is read-only: it may not change {name}"
            )
        return
    require(Action.ADMIN)


def _check_name(name: str, kind: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"{kind} name {name[:80]!r} is not valid: use 1 to 64 characters of a-z, 0-9, "
            "'.', '_' and '-', starting with a letter or digit"
        )


def _check_email(email: str) -> str:
    email = email.strip()
    if email and (len(email) > 320 or not _EMAIL.fullmatch(email)):
        raise InvalidArgument(f"{email[:80]!r} is not an email address")
    return email


def _scope(models: Sequence[str] | None) -> tuple[str, ...] | None:
    if models is None:
        return None
    if isinstance(models, str):
        models = [models]
    names = sorted({m.strip() for m in models})
    if not names or any(not m or len(m) > 128 for m in names):
        raise InvalidArgument(
            "a token's models must be 1 or more model names (leave them out for every model)"
        )
    return tuple(names)
