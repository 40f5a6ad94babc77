"""The SDK's identity verbs behave the same on a local home and against a server.

``client`` runs the scenario in every mode (local SQLite/PostgreSQL/S3, REST as an admin's
token); ``pair`` shares one home between a local client and a remote one, so what one
writes the other reads back as equal entities.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from corral import Client
from corral.access import Role
from corral.config import Settings
from corral.errors import AlreadyExists, InvalidArgument, NotFound
from tests.fixtures.corral import ServerThread, admin_token


def test_users_teams_grants_and_tokens_round_trip(client: Client) -> None:
    ana = client.create_user("ana", password="correct-horse", email="ana@example.com")
    assert (ana.name, ana.email, ana.has_password, ana.disabled) == (
        "ana",
        "ana@example.com",
        True,
        False,
    )
    assert client.get_user("ana") == ana
    assert "ana" in [u.name for u in client.list_users()]
    with pytest.raises(AlreadyExists):
        client.create_user("ana")
    with pytest.raises(InvalidArgument):
        client.create_user("bob", password="short")

    disabled = client.update_user("ana", disabled=True, email="a@example.org")
    assert (disabled.disabled, disabled.email) == (True, "a@example.org")
    assert client.update_user("ana", disabled=False).disabled is False
    assert client.update_user("ana", password="another-horse").has_password is True

    client.create_team("ml")
    team = client.add_member("ml", "ana")
    assert (team.name, team.members) == ("ml", ("ana",))
    assert [t.name for t in client.list_teams()] == ["ml"]

    grant = client.grant("maintainer", team="ml", model="churn")
    assert (grant.subject, grant.subject_kind, grant.role, grant.model) == (
        "ml",
        "team",
        Role.MAINTAINER,
        "churn",
    )
    viewer = client.grant(Role.VIEWER, user="ana")
    assert client.list_grants(model="churn") == [grant]
    assert client.list_grants(subject="ana") == [viewer]
    with pytest.raises(InvalidArgument):
        client.grant("owner", user="ana")
    with pytest.raises(NotFound):
        client.revoke_grant(99_999)

    token, secret = client.create_token(
        "ana",
        name="laptop",
        expires_in=timedelta(days=30),
        models=["churn"],
        read_only=True,
        tier="silver",
        rate_limit="50/second",
        rows_per_day=1000,
    )
    assert secret.startswith(f"crl_{token.id}_")
    assert (token.user, token.name, token.kind, token.models, token.read_only) == (
        "ana",
        "laptop",
        "api",
        ("churn",),
        True,
    )
    assert (token.tier, token.rate_limit, token.rows_per_day) == ("silver", "50/second", 1000)
    assert token.expires_at is not None
    in_30_days = datetime.now(UTC) + timedelta(days=30)
    assert abs((token.expires_at - in_30_days).total_seconds()) < 120
    assert client.list_tokens("ana") == [token]

    me = client.whoami()
    assert me["global_role"] == "admin"
    assert me["name"] == ("tester" if client.is_remote else "system")

    client.revoke_token(token.id)
    [revoked] = client.list_tokens("ana")
    assert revoked.revoked_at is not None
    client.revoke_grant(viewer.id)
    assert client.list_grants(subject="ana") == []
    assert client.remove_member("ml", "ana").members == ()
    client.delete_team("ml")
    assert client.list_teams() == []
    client.delete_user("ana")
    with pytest.raises(NotFound):
        client.get_user("ana")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Client]]:
    """(local, remote as an admin's token) on the same home."""
    tmp: Path = tmp_path_factory.mktemp("identity-contract")
    settings = Settings(home=tmp / "home", anonymous_role="none", monitor_evaluate_seconds=0)
    token = admin_token(settings)
    with (
        Client(settings=settings) as local,
        ServerThread(settings, token=token) as server,
        Client(server.url, token=token, cache_dir=tmp / "cache") as remote,
    ):
        yield local, remote


def test_both_modes_read_back_the_same_entities(pair: tuple[Client, Client]) -> None:
    local, remote = pair
    local.create_user("carol", email="carol@example.com")
    remote.create_user("dave", password="correct-horse")
    assert local.list_users() == remote.list_users()
    assert local.get_user("dave") == remote.get_user("dave")

    remote.create_team("data")
    local.add_member("data", "carol")
    assert remote.add_member("data", "dave") == local.list_teams()[0]
    assert local.list_teams() == remote.list_teams()

    local.grant("contributor", team="data", model="fraud")
    remote.grant("viewer", user="carol")
    assert local.list_grants() == remote.list_grants()
    assert local.list_grants(model="fraud") == remote.list_grants(model="fraud")

    made, _ = remote.create_token("carol", name="ci", models=["fraud"], tier="silver")
    assert local.list_tokens("carol") == remote.list_tokens("carol") == [made]
    local.revoke_token(made.id)
    assert remote.list_tokens("carol")[0].revoked_at is not None
