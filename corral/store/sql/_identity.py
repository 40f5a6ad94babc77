"""The identity half of ``SqlRegistryStore``: users, teams, grants and tokens.

Its writes are registry writes: they bump the generation (which is how other processes
learn that their cache of authenticated tokens is stale) and join ``audited()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from corral.access import Role
from corral.accounts import (
    Credentials,
    Grant,
    SubjectExists,
    SubjectKind,
    SubjectNotFound,
    Team,
    Token,
    TokenCredentials,
    User,
    UserAccess,
)
from corral.errors import NotFound
from corral.store.sql._base import SessionBase
from corral.store.sql.tables import (
    GrantRow,
    ModelRow,
    TeamMemberRow,
    TeamRow,
    TokenRow,
    UserRow,
)

_GRANT_COLUMNS = (
    GrantRow.id,
    UserRow.name.label("user_name"),
    TeamRow.name.label("team_name"),
    GrantRow.role,
    GrantRow.model,
    GrantRow.created_at,
    GrantRow.created_by,
)
_GRANTS = (
    select(*_GRANT_COLUMNS)
    .select_from(GrantRow)
    .outerjoin(UserRow, GrantRow.user_id == UserRow.id)
    .outerjoin(TeamRow, GrantRow.team_id == TeamRow.id)
    .order_by(GrantRow.id)
)
_TOKENS = (
    select(TokenRow, UserRow.name.label("user_name"), UserRow.disabled.label("user_disabled"))
    .join(UserRow, TokenRow.user_id == UserRow.id)
    .order_by(TokenRow.created_at, TokenRow.id)
)


def _user(row: UserRow) -> User:
    return User(
        name=row.name,
        email=row.email,
        created_at=row.created_at,
        disabled=row.disabled,
        has_password=row.password_hash is not None,
    )


def _grant(row: Any) -> Grant:
    is_user = row.user_name is not None
    return Grant(
        id=row.id,
        subject=row.user_name if is_user else row.team_name,
        subject_kind="user" if is_user else "team",
        role=Role.parse(row.role),
        model=row.model,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _token(row: TokenRow, user: str) -> Token:
    return Token(
        id=row.id,
        user=user,
        name=row.name,
        kind=row.kind,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        models=tuple(row.models) if row.models is not None else None,
        read_only=row.read_only,
        tier=row.tier,
        rate_limit=row.rate_limit,
        rows_per_day=row.rows_per_day,
    )


class IdentityMethods(SessionBase):
    # -- lookups ------------------------------------------------------------------------

    @staticmethod
    def _user_row(session: Session, name: str) -> UserRow:
        row = session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
        if row is None:
            raise SubjectNotFound("user", name)
        return row

    @staticmethod
    def _team_row(session: Session, name: str) -> TeamRow:
        row = session.scalars(select(TeamRow).where(TeamRow.name == name)).one_or_none()
        if row is None:
            raise SubjectNotFound("team", name)
        return row

    @staticmethod
    def _name_taken(session: Session, name: str) -> bool:
        return (
            session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None
            or session.scalar(select(TeamRow.id).where(TeamRow.name == name)) is not None
        )

    @staticmethod
    def _members(session: Session, team_id: int) -> tuple[str, ...]:
        return tuple(
            session.scalars(
                select(UserRow.name)
                .join(TeamMemberRow, TeamMemberRow.user_id == UserRow.id)
                .where(TeamMemberRow.team_id == team_id)
                .order_by(UserRow.name)
            )
        )

    def _team(self, session: Session, row: TeamRow) -> Team:
        return Team(
            name=row.name, members=self._members(session, row.id), created_at=row.created_at
        )

    # -- users --------------------------------------------------------------------------

    def count_users(self) -> int:
        with self._reading() as session:
            return int(session.scalar(select(func.count()).select_from(UserRow)) or 0)

    def count_admins(self) -> int:
        with self._writing() as session:  # inside audited(): sees that transaction's writes
            global_admin = (GrantRow.role == Role.ADMIN.label) & GrantRow.model.is_(None)
            direct = select(GrantRow.user_id).where(global_admin, GrantRow.user_id.is_not(None))
            teams = select(GrantRow.team_id).where(global_admin, GrantRow.team_id.is_not(None))
            members = select(TeamMemberRow.user_id).where(TeamMemberRow.team_id.in_(teams))
            statement = (
                select(func.count())
                .select_from(UserRow)
                .where(UserRow.disabled.is_(False))
                .where(or_(UserRow.id.in_(direct), UserRow.id.in_(members)))
            )
            return int(session.scalar(statement) or 0)

    def create_user(self, name: str, email: str, password_hash: str | None, at: datetime) -> User:
        try:
            with self._writing() as session:
                if self._name_taken(session, name):
                    raise SubjectExists(name)
                row = UserRow(
                    name=name,
                    email=email,
                    password_hash=password_hash,
                    disabled=False,
                    created_at=at,
                )
                session.add(row)
                session.flush()
                return _user(row)
        except IntegrityError as exc:
            raise SubjectExists(name) from exc

    def get_user(self, name: str) -> User:
        with self._reading() as session:
            return _user(self._user_row(session, name))

    def list_users(self) -> list[User]:
        with self._reading() as session:
            return [_user(row) for row in session.scalars(select(UserRow).order_by(UserRow.name))]

    def user_credentials(self, name: str) -> Credentials | None:
        with self._reading() as session:
            row = session.execute(
                select(UserRow.password_hash, UserRow.disabled).where(UserRow.name == name)
            ).one_or_none()
            return None if row is None else Credentials(row.password_hash, row.disabled)

    def update_user(
        self,
        name: str,
        *,
        email: str | None = None,
        password_hash: str | None = None,
        disabled: bool | None = None,
    ) -> User:
        with self._writing() as session:
            row = self._user_row(session, name)
            if email is not None:
                row.email = email
            if password_hash is not None:
                row.password_hash = password_hash
            if disabled is not None:
                row.disabled = disabled
            session.flush()
            return _user(row)

    def delete_user(self, name: str) -> None:
        with self._writing() as session:
            session.delete(self._user_row(session, name))  # tokens, grants, memberships cascade
            session.flush()

    def user_access(self, name: str) -> UserAccess:
        with self._reading() as session:
            user = self._user_row(session, name)
            teams = tuple(
                session.scalars(
                    select(TeamRow.name)
                    .join(TeamMemberRow, TeamMemberRow.team_id == TeamRow.id)
                    .where(TeamMemberRow.user_id == user.id)
                    .order_by(TeamRow.name)
                )
            )
            team_ids = select(TeamMemberRow.team_id).where(TeamMemberRow.user_id == user.id)
            grants = tuple(
                _grant(row)
                for row in session.execute(
                    _GRANTS.where(or_(GrantRow.user_id == user.id, GrantRow.team_id.in_(team_ids)))
                )
            )
            owned = tuple(
                session.scalars(
                    select(ModelRow.name)
                    .where(ModelRow.owner.in_([name, *teams]))
                    .order_by(ModelRow.name)
                )
            )
            return UserAccess(teams=teams, grants=grants, owned_models=owned)

    # -- teams --------------------------------------------------------------------------

    def create_team(self, name: str, at: datetime) -> Team:
        try:
            with self._writing() as session:
                if self._name_taken(session, name):
                    raise SubjectExists(name)
                row = TeamRow(name=name, created_at=at)
                session.add(row)
                session.flush()
                return Team(name=name, members=(), created_at=row.created_at)
        except IntegrityError as exc:
            raise SubjectExists(name) from exc

    def get_team(self, name: str) -> Team:
        with self._reading() as session:
            return self._team(session, self._team_row(session, name))

    def list_teams(self) -> list[Team]:
        with self._reading() as session:
            rows = session.scalars(select(TeamRow).order_by(TeamRow.name))
            return [self._team(session, row) for row in rows]

    def delete_team(self, name: str) -> None:
        with self._writing() as session:
            session.delete(self._team_row(session, name))  # grants and memberships cascade
            session.flush()

    def set_membership(self, team: str, user: str, member: bool) -> Team:
        with self._writing() as session:
            team_row = self._team_row(session, team)
            user_id = self._user_row(session, user).id
            key = {"team_id": team_row.id, "user_id": user_id}
            present = session.get(TeamMemberRow, (team_row.id, user_id)) is not None
            if member and not present:
                session.add(TeamMemberRow(**key))
            elif not member and present:
                session.execute(
                    delete(TeamMemberRow).where(
                        TeamMemberRow.team_id == team_row.id, TeamMemberRow.user_id == user_id
                    )
                )
            session.flush()
            return self._team(session, team_row)

    # -- grants -------------------------------------------------------------------------

    def put_grant(
        self,
        subject: str,
        kind: SubjectKind,
        role: Role,
        model: str | None,
        at: datetime,
        created_by: str,
    ) -> tuple[Grant | None, Grant]:
        with self._writing() as session:
            if kind == "user":
                user_id, team_id = self._user_row(session, subject).id, None
                same_subject = GrantRow.user_id == user_id
            else:
                user_id, team_id = None, self._team_row(session, subject).id
                same_subject = GrantRow.team_id == team_id
            same_model = GrantRow.model.is_(None) if model is None else GrantRow.model == model
            existing = session.scalars(
                select(GrantRow).where(same_subject, same_model)
            ).one_or_none()
            before = None
            if existing is not None:
                before = self._grant_by_id(session, existing.id)
                existing.role, existing.created_at, existing.created_by = role.label, at, created_by
                row = existing
            else:
                row = GrantRow(
                    user_id=user_id,
                    team_id=team_id,
                    role=role.label,
                    model=model,
                    created_at=at,
                    created_by=created_by,
                )
                session.add(row)
            session.flush()
            return before, self._grant_by_id(session, row.id)

    @staticmethod
    def _grant_by_id(session: Session, id: int) -> Grant:
        row = session.execute(_GRANTS.where(GrantRow.id == id)).one_or_none()
        if row is None:
            raise NotFound(f"there is no grant {id}")
        return _grant(row)

    def get_grant(self, id: int) -> Grant:
        with self._reading() as session:
            return self._grant_by_id(session, id)

    def delete_grant(self, id: int) -> None:
        with self._writing() as session:
            if session.execute(delete(GrantRow).where(GrantRow.id == id)).rowcount == 0:  # type: ignore[attr-defined]
                raise NotFound(f"there is no grant {id}")

    def list_grants(
        self, model: str | None = None, subjects: Sequence[str] | None = None
    ) -> list[Grant]:
        statement = _GRANTS
        if model is not None:
            statement = statement.where(GrantRow.model == model)
        if subjects is not None:
            statement = statement.where(
                or_(UserRow.name.in_(list(subjects)), TeamRow.name.in_(list(subjects)))
            )
        with self._reading() as session:
            return [_grant(row) for row in session.execute(statement)]

    def model_owner(self, model: str) -> str | None:
        with self._reading() as session:
            return session.scalar(select(ModelRow.owner).where(ModelRow.name == model))

    # -- tokens -------------------------------------------------------------------------

    def create_token(self, token: Token, secret_hash: str) -> Token:
        with self._writing() as session:
            row = TokenRow(
                id=token.id,
                user_id=self._user_row(session, token.user).id,
                name=token.name,
                kind=token.kind,
                secret_hash=secret_hash,
                created_at=token.created_at,
                expires_at=token.expires_at,
                revoked_at=None,
                models=list(token.models) if token.models is not None else None,
                read_only=token.read_only,
                tier=token.tier,
                rate_limit=token.rate_limit,
                rows_per_day=token.rows_per_day,
            )
            session.add(row)
            session.flush()
            return _token(row, token.user)

    def _token_row(self, session: Session, id: str) -> Any:
        row = session.execute(_TOKENS.where(TokenRow.id == id)).one_or_none()
        if row is None:
            raise NotFound(f"there is no token '{id}'")
        return row

    def get_token(self, id: str) -> Token:
        with self._reading() as session:
            row = self._token_row(session, id)
            return _token(row.TokenRow, row.user_name)

    def token_credentials(self, id: str) -> TokenCredentials | None:
        with self._reading() as session:
            row = session.execute(_TOKENS.where(TokenRow.id == id)).one_or_none()
            if row is None:
                return None
            return TokenCredentials(
                token=_token(row.TokenRow, row.user_name),
                secret_hash=row.TokenRow.secret_hash,
                user_disabled=row.user_disabled,
            )

    def list_tokens(self, user: str | None) -> list[Token]:
        statement = _TOKENS if user is None else _TOKENS.where(UserRow.name == user)
        with self._reading() as session:
            if user is not None:
                self._user_row(session, user)
            return [_token(row.TokenRow, row.user_name) for row in session.execute(statement)]

    def revoke_token(self, id: str, at: datetime) -> Token:
        with self._writing() as session:
            row = self._token_row(session, id)
            if row.TokenRow.revoked_at is None:
                session.get(TokenRow, id).revoked_at = at  # type: ignore[union-attr]
                session.flush()
            token = session.get(TokenRow, id)
            assert token is not None
            return _token(token, row.user_name)
