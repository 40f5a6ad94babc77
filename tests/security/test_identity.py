"""The identity service on the real metadata store (SQLite and PostgreSQL): users and their
argon2 passwords, teams, grants, tokens (hashed, expiring, scoped, revocable), the cache of
authenticated principals, who may manage what, and the audit trail of every change."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from corral.access import SYSTEM, Role, acting_as
from corral.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from corral.registry.audit import AuditQuery, verify_chain
from corral.registry.entities import Model
from corral.security.identity import IdentityService
from corral.store.ratelimits import validate_limit
from corral.store.sql import SqlRegistryStore

CHEAP = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _service(store: SqlRegistryStore, clock: Clock | None = None) -> IdentityService:
    return IdentityService(
        store,
        validate_rate=validate_limit,
        hasher=CHEAP,
        session_hours=8,
        clock=clock or (lambda: datetime.now(UTC)),
    )


@pytest.fixture
def identity(sql_store: SqlRegistryStore) -> IdentityService:
    return _service(sql_store)


@pytest.fixture
def admin(identity: IdentityService) -> Iterator[str]:
    secret = identity.bootstrap_admin()
    assert secret is not None
    return secret


def _as(identity: IdentityService, secret: str) -> Any:
    return acting_as(identity.authenticate(secret))


def _user_with_token(identity: IdentityService, name: str, *grants: tuple[Role, str | None]) -> str:
    identity.create_user(name)
    for role, model in grants:
        identity.grant(role, user=name, model=model)
    return identity.create_token(name, name="test")[1]


def _rows(store: SqlRegistryStore, sql: str) -> list[Any]:
    with store.engine.connect() as connection:
        return list(connection.execute(text(sql)))


# -- first start --------------------------------------------------------------------------


def test_the_first_start_makes_one_admin_and_later_starts_none(
    identity: IdentityService, sql_store: SqlRegistryStore
) -> None:
    secret = identity.bootstrap_admin()
    assert secret is not None
    assert secret.startswith("crl_")
    principal = identity.authenticate(secret)
    assert (principal.name, principal.global_role) == ("admin", Role.ADMIN)
    assert identity.bootstrap_admin() is None
    assert _service(sql_store).bootstrap_admin() is None  # another process, same store

    actions = [e.action for e in sql_store.list_audit(AuditQuery()).items]
    assert sorted(actions) == ["grant.create", "token.create", "user.create"]
    assert verify_chain(sql_store.audit_chain()).ok


def test_concurrent_first_starts_make_exactly_one_admin_token(
    sql_store: SqlRegistryStore,
) -> None:
    results: list[str | None] = []
    barrier = threading.Barrier(3)

    def start() -> None:
        service = _service(sql_store)
        barrier.wait()
        results.append(service.bootstrap_admin())

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([r for r in results if r is not None]) == 1
    assert [u.name for u in sql_store.list_users()] == ["admin"]
    assert len(sql_store.list_tokens(None)) == 1


# -- passwords and sessions ---------------------------------------------------------------


def test_passwords_are_argon2_hashed_and_log_in_to_expiring_sessions(
    sql_store: SqlRegistryStore,
) -> None:
    clock = Clock()
    identity = _service(sql_store, clock)
    identity.create_user("ana", password="correct-horse")
    [(stored,)] = _rows(sql_store, "SELECT password_hash FROM users WHERE name = 'ana'")
    assert stored.startswith("$argon2id$")
    assert "correct-horse" not in stored

    token, secret = identity.login("ana", "correct-horse")
    assert (token.kind, token.user) == ("session", "ana")
    assert token.expires_at == clock.now + timedelta(hours=8)
    assert identity.authenticate(secret).name == "ana"

    for name, password in [("ana", "wrong-horse"), ("nobody", "correct-horse"), ("Bad!", "x")]:
        with pytest.raises(Unauthenticated, match="wrong user name or password"):
            identity.login(name, password)

    clock.now += timedelta(hours=8)
    with pytest.raises(Unauthenticated, match="expired"):
        identity.authenticate(secret)  # cached, and refused all the same

    identity.logout(identity.login("ana", "correct-horse")[1])
    with pytest.raises(NotFound):
        identity.logout("crl_000000000000_" + "x" * 43)


def test_a_user_without_a_password_or_disabled_cannot_log_in(identity: IdentityService) -> None:
    identity.create_user("bot")
    with pytest.raises(Unauthenticated, match="wrong user name or password"):
        identity.login("bot", "")
    identity.create_user("ana", password="correct-horse")
    identity.disable_user("ana")
    with pytest.raises(Unauthenticated, match="disabled"):
        identity.login("ana", "correct-horse")
    identity.enable_user("ana")
    assert identity.login("ana", "correct-horse")[0].kind == "session"


# -- tokens -------------------------------------------------------------------------------


def test_a_token_secret_is_stored_only_as_its_sha256(
    identity: IdentityService, sql_store: SqlRegistryStore
) -> None:
    identity.create_user("ana")
    token, secret = identity.create_token("ana", name="ci")
    assert secret.startswith(f"crl_{token.id}_")
    [(stored,)] = _rows(sql_store, f"SELECT secret_hash FROM tokens WHERE id = '{token.id}'")
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    dump = "\n".join(str(row) for row in _rows(sql_store, "SELECT * FROM tokens"))
    assert secret.rsplit("_", 1)[1] not in dump

    # The right id with a wrong secret, a malformed secret, an unknown id: all refused,
    # also once the real secret has been verified and cached.
    assert identity.authenticate(secret).name == "ana"
    assert identity.authenticate(secret).name == "ana"
    with pytest.raises(Unauthenticated, match="not known"):
        identity.authenticate(secret[:-1] + ("B" if secret[-1] != "B" else "C"))
    with pytest.raises(Unauthenticated, match="not known"):
        identity.authenticate(f"crl_{token.id}_{'A' * 43}")
    with pytest.raises(Unauthenticated, match="malformed"):
        identity.authenticate("not-a-token")
    with pytest.raises(Unauthenticated, match="not known"):
        identity.authenticate("crl_000000000000_" + "A" * 43)


def test_a_token_carries_its_scope_read_only_flag_tier_and_limits(
    identity: IdentityService,
) -> None:
    identity.create_user("ana")
    identity.grant(Role.CONSUMER, user="ana")
    _, secret = identity.create_token(
        "ana",
        name="scoped",
        models=["churn", "fraud", "churn"],
        read_only=True,
        tier="gold",
        rate_limit="50/second",
        rows_per_day=1000,
    )
    principal = identity.authenticate(secret)
    assert principal.scope == frozenset({"churn", "fraud"})
    assert (principal.read_only, principal.tier) == (True, "gold")
    assert (principal.rate_limit, principal.rows_per_day) == ("50/second", 1000)
    assert principal.role_for("churn") is Role.CONSUMER
    assert principal.role_for("other") is None  # outside the scope


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"name": " "}, "name"),
        ({"name": "x", "expires_in": timedelta(0)}, "within 3650 days"),
        ({"name": "x", "expires_in": timedelta(days=4000)}, "leave the expiry out"),
        ({"name": "x", "tier": "platinum"}, "tiers are"),
        ({"name": "x", "rate_limit": "fast"}, "50/second"),
        ({"name": "x", "rows_per_day": 0}, "at least 1"),
        ({"name": "x", "models": []}, "model names"),
    ],
)
def test_a_bad_token_request_is_refused_with_a_clear_message(
    identity: IdentityService, fields: dict[str, Any], words: str
) -> None:
    identity.create_user("ana")
    with pytest.raises(InvalidArgument, match=words):
        identity.create_token("ana", **fields)
    assert identity.list_tokens("ana") == []


def test_revocation_reaches_another_process_at_its_next_refresh_and_this_one_at_once(
    identity: IdentityService, sql_store: SqlRegistryStore
) -> None:
    other = _service(sql_store)  # another worker on the same store
    identity.create_user("ana")
    identity.grant(Role.VIEWER, user="ana")
    token, secret = identity.create_token("ana", name="ci")
    other.refresh()
    assert other.authenticate(secret).name == "ana"  # now cached in the other worker

    identity.revoke_token(token.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        identity.authenticate(secret)
    other.refresh()
    with pytest.raises(Unauthenticated, match="revoked"):
        other.authenticate(secret)


def test_role_changes_reach_cached_principals_after_a_refresh(
    identity: IdentityService, sql_store: SqlRegistryStore
) -> None:
    other = _service(sql_store)
    secret = _user_with_token(identity, "ana", (Role.VIEWER, None))
    other.refresh()
    assert other.authenticate(secret).global_role is Role.VIEWER
    identity.grant(Role.CONTRIBUTOR, user="ana")  # granting again replaces the role
    other.refresh()
    assert other.authenticate(secret).global_role is Role.CONTRIBUTOR
    identity.disable_user("ana")
    other.refresh()
    with pytest.raises(Unauthenticated, match="disabled"):
        other.authenticate(secret)


# -- roles --------------------------------------------------------------------------------


def test_roles_come_from_grants_teams_and_ownership(
    identity: IdentityService, sql_store: SqlRegistryStore
) -> None:
    identity.create_user("ana")
    identity.create_team("ml")
    identity.add_member("ml", "ana")
    identity.grant(Role.VIEWER, user="ana")
    identity.grant(Role.CONSUMER, team="ml", model="churn")
    identity.grant(Role.CONTRIBUTOR, user="ana", model="churn")
    sql_store.create_model(Model(name="fraud", owner="ml"))
    _, secret = identity.create_token("ana", name="t")

    principal = identity.authenticate(secret)
    assert principal.teams == frozenset({"ml"})
    assert principal.global_role is Role.VIEWER
    assert dict(principal.model_roles) == {
        "churn": Role.CONTRIBUTOR,  # the higher of the user's and the team's
        "fraud": Role.MAINTAINER,  # owned by the user's team
    }

    identity.remove_member("ml", "ana")
    assert dict(identity.authenticate(secret).model_roles) == {"churn": Role.CONTRIBUTOR}


def test_granting_again_replaces_and_deleting_a_subject_removes_its_grants(
    identity: IdentityService,
) -> None:
    identity.create_user("ana")
    identity.create_team("ml")
    first = identity.grant(Role.VIEWER, user="ana", model="churn")
    again = identity.grant(Role.MAINTAINER, user="ana", model="churn")
    assert (again.id, again.role) == (first.id, Role.MAINTAINER)
    identity.grant(Role.VIEWER, team="ml")
    assert len(identity.list_grants()) == 2

    identity.delete_team("ml")
    assert [g.subject for g in identity.list_grants()] == ["ana"]
    _, secret = identity.create_token("ana", name="t")
    identity.delete_user("ana")
    assert identity.list_grants() == []
    with pytest.raises(Unauthenticated, match="not known"):
        identity.authenticate(secret)


def test_users_and_teams_share_one_namespace_and_names_are_checked(
    identity: IdentityService,
) -> None:
    identity.create_user("ana")
    with pytest.raises(AlreadyExists, match="namespace"):
        identity.create_team("ana")
    identity.create_team("ml")
    with pytest.raises(AlreadyExists):
        identity.create_user("ml")
    for bad in ("Ana", "", "a b", "-x", "x" * 65, "../etc"):
        with pytest.raises(InvalidArgument, match="not valid"):
            identity.create_user(bad)
    with pytest.raises(InvalidArgument, match="8"):
        identity.create_user("bob", password="short")
    with pytest.raises(InvalidArgument, match="email"):
        identity.create_user("bob", email="not an email")
    with pytest.raises(NotFound, match="user 'nobody'"):
        identity.add_member("ml", "nobody")
    with pytest.raises(NotFound, match="team 'nope'"):
        identity.grant(Role.VIEWER, team="nope")
    with pytest.raises(InvalidArgument, match="exactly one"):
        identity.grant(Role.VIEWER, user="ana", team="ml")


# -- who may manage what ------------------------------------------------------------------


def test_only_admins_manage_users_and_teams(identity: IdentityService, admin: str) -> None:
    viewer = _user_with_token(identity, "vic", (Role.VIEWER, None))
    with _as(identity, viewer):
        for call in (
            lambda: identity.create_user("eve"),
            lambda: identity.list_users(),
            lambda: identity.disable_user("admin"),
            lambda: identity.create_team("ops"),
            lambda: identity.get_user("admin"),
        ):
            with pytest.raises(PermissionDenied, match="admin"):
                call()
        assert identity.get_user("vic").name == "vic"  # oneself
        assert identity.list_teams() == []
    with _as(identity, admin):
        assert identity.create_user("eve").name == "eve"


def test_a_maintainer_grants_on_its_model_only_and_never_admin(
    identity: IdentityService, sql_store: SqlRegistryStore, admin: str
) -> None:
    maintainer = _user_with_token(identity, "mia", (Role.MAINTAINER, "churn"))
    identity.create_user("ana")
    sql_store.create_model(Model(name="owned", owner="mia"))
    with _as(identity, maintainer):
        made = identity.grant(Role.CONSUMER, user="ana", model="churn")
        assert made.created_by == "mia"
        identity.grant(Role.VIEWER, user="ana", model="owned")  # the owner may, too
        with pytest.raises(PermissionDenied):
            identity.grant(Role.CONSUMER, user="ana", model="fraud")
        with pytest.raises(PermissionDenied, match="admin"):
            identity.grant(Role.VIEWER, user="ana")  # every model
        with pytest.raises(PermissionDenied, match="admin"):
            identity.grant(Role.ADMIN, user="ana", model="churn")
        assert {g.model for g in identity.list_grants(subject="ana")} == {"churn", "owned"}
        identity.revoke_grant(made.id)
    with _as(identity, admin):
        assert [g.model for g in identity.list_grants(subject="ana")] == ["owned"]


def test_tokens_are_ones_own_unless_an_admin_says_otherwise(
    identity: IdentityService, admin: str
) -> None:
    ana = _user_with_token(identity, "ana", (Role.VIEWER, None))
    bob = _user_with_token(identity, "bob", (Role.VIEWER, None))
    with _as(identity, ana):
        mine, _ = identity.create_token(name="laptop")
        assert mine.user == "ana"
        with pytest.raises(PermissionDenied, match="admin"):
            identity.create_token("bob", name="for bob")
        with pytest.raises(PermissionDenied, match="gold"):
            identity.create_token(name="fast", tier="gold")
        assert {t.user for t in identity.list_tokens()} == {"ana"}
        with pytest.raises(PermissionDenied):
            identity.list_tokens("bob")
        bobs = identity.authenticate(bob).token_id
        assert bobs is not None
        with pytest.raises(PermissionDenied):
            identity.revoke_token(bobs)
        identity.revoke_token(mine.id)
    with _as(identity, admin):
        assert identity.create_token("bob", name="gold", tier="gold")[0].tier == "gold"
        assert {t.user for t in identity.list_tokens("bob")} == {"bob"}


def test_a_read_only_or_scoped_token_cannot_mint_a_stronger_one(
    identity: IdentityService,
) -> None:
    identity.create_user("ana")
    identity.grant(Role.MAINTAINER, user="ana")
    _, read_only = identity.create_token("ana", name="ro", read_only=True)
    _, scoped = identity.create_token("ana", name="scoped", models=["churn"])
    with _as(identity, read_only), pytest.raises(PermissionDenied, match="read-only"):
        identity.create_token(name="escalate")
    with _as(identity, scoped):
        with pytest.raises(PermissionDenied, match="scoped"):
            identity.create_token(name="everything")
        narrower, _ = identity.create_token(name="narrow", models=["churn"])
        assert narrower.models == ("churn",)


def test_anonymous_callers_manage_nothing(identity: IdentityService) -> None:
    from corral.access import ANONYMOUS

    identity.create_user("ana")
    with acting_as(ANONYMOUS):
        with pytest.raises(Unauthenticated):
            identity.create_token("ana", name="x")
        with pytest.raises(Unauthenticated):
            identity.list_tokens()
        with pytest.raises(Unauthenticated):
            identity.create_user("eve")


def test_every_change_is_audited_with_its_actor_and_no_secret(
    identity: IdentityService, sql_store: SqlRegistryStore, admin: str
) -> None:
    with _as(identity, admin):
        identity.create_user("ana", password="correct-horse")
        identity.create_team("ml")
        identity.add_member("ml", "ana")
        grant = identity.grant(Role.VIEWER, team="ml")
        token, secret = identity.create_token("ana", name="ci")
        identity.revoke_token(token.id)
        identity.revoke_grant(grant.id)
        identity.set_email("ana", "ana@example.com")
        identity.disable_user("ana")
        identity.delete_user("ana")
    events = sql_store.list_audit(AuditQuery(actor="admin")).items
    assert [e.action for e in reversed(events)] == [
        "user.create",
        "team.create",
        "team.add_member",
        "grant.create",
        "token.create",
        "token.revoke",
        "grant.delete",
        "user.update",
        "user.disable",
        "user.delete",
    ]
    dump = str([(e.before, e.after) for e in events])
    assert secret not in dump
    assert "argon2" not in dump
    assert "correct-horse" not in dump
    assert verify_chain(sql_store.audit_chain()).ok


def test_the_system_principal_acts_locally_but_must_name_whose_token(
    identity: IdentityService,
) -> None:
    with acting_as(SYSTEM):
        identity.create_user("ana")
        with pytest.raises(InvalidArgument, match="--user"):
            identity.create_token(name="whose?")
        assert identity.create_token("ana", name="ok")[0].user == "ana"
        assert [t.user for t in identity.list_tokens()] == ["ana"]


def test_deleting_a_model_takes_its_grants_with_it(
    identity: IdentityService, sql_store: SqlRegistryStore
) -> None:
    identity.create_user("ana")
    sql_store.create_model(Model(name="churn", owner="admin"))
    identity.grant(Role.MAINTAINER, user="ana", model="churn")
    identity.grant(Role.VIEWER, user="ana", model="fraud")
    _, secret = identity.create_token("ana", name="t")
    assert identity.authenticate(secret).role_for("churn") is Role.MAINTAINER

    sql_store.delete_model("churn")
    identity.refresh()

    assert [g.model for g in identity.list_grants(subject="ana")] == ["fraud"]
    sql_store.create_model(Model(name="churn", owner="admin"))  # a new model, same name
    assert identity.authenticate(secret).role_for("churn") is None


def test_the_last_enabled_admin_cannot_be_removed_by_any_route(
    identity: IdentityService, sql_store: SqlRegistryStore
) -> None:
    identity.bootstrap_admin()  # "admin", with the global admin grant
    identity.create_team("ops")
    identity.create_user("ana")
    [grant] = identity.list_grants(subject="admin")
    before = _rows(sql_store, "SELECT COUNT(*) FROM audit_events")

    for attempt in (
        lambda: identity.disable_user("admin"),
        lambda: identity.delete_user("admin"),
        lambda: identity.revoke_grant(grant.id),
        lambda: identity.grant(Role.VIEWER, user="admin"),  # replaces the admin role
    ):
        with pytest.raises(Conflict, match="no enabled user with the admin role"):
            attempt()
    assert identity.get_user("admin").disabled is False
    assert identity.list_grants(subject="admin") == [grant]
    assert _rows(sql_store, "SELECT COUNT(*) FROM audit_events") == before  # all rolled back

    # Through a team: its last member may not leave, nor the team go, while it holds the role.
    identity.add_member("ops", "ana")
    identity.grant(Role.ADMIN, team="ops")
    identity.revoke_grant(grant.id)  # ana, through ops, is still an admin
    with pytest.raises(Conflict):
        identity.remove_member("ops", "ana")
    with pytest.raises(Conflict):
        identity.delete_team("ops")
    identity.grant(Role.ADMIN, user="admin")
    identity.delete_team("ops")  # admin holds it again: now it may go
    identity.disable_user("ana")
