"""The identity routes over real HTTP: /me, users, teams, grants and tokens.

A real server on loopback with anonymous access closed; the admin token is the one the
first start makes (``bootstrap_admin``), and every other credential is made through these
routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.api.app import create_app
from corral.config import Settings
from corral.wiring import open_corral
from tests.fixtures.corral import ServerThread

PROBLEM = "application/problem+json"


@dataclass
class Api:
    url: str
    admin: str

    def call(
        self, method: str, path: str, token: str | None = "admin", **kwargs: Any
    ) -> httpx.Response:
        secret = self.admin if token == "admin" else token
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.request(
            method, f"{self.url}/api/v1{path}", headers=headers, timeout=30, **kwargs
        )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(home=tmp_path / "home", anonymous_role="none", monitor_evaluate_seconds=0)
    wired = open_corral(settings)
    admin = wired.identity.bootstrap_admin()
    assert admin is not None
    try:
        with ServerThread(create_app(settings, corral=wired)) as server:
            yield Api(server.url, admin)
    finally:
        wired.close()


def _problem(reply: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = reply.json()
    assert body["code"] == code
    assert body["status"] == status
    return body


def _token(api: Api, user: str, **fields: Any) -> tuple[str, str]:
    """(token id, secret) of a new token of ``user``."""
    reply = api.call("POST", "/tokens", json={"user": user, "name": "t", **fields})
    assert reply.status_code == 201, reply.text
    return reply.json()["id"], reply.json()["secret"]


def test_me_describes_the_caller_and_refuses_no_token(api: Api) -> None:
    me = api.call("GET", "/me").json()
    assert me["name"] == "admin"
    assert me["authenticated"] is True
    assert me["global_role"] == "admin"
    assert me["token_id"] == api.admin.split("_")[1]
    assert (me["scope"], me["read_only"], me["tier"]) == (None, False, "bronze")

    refused = _problem(api.call("GET", "/me", token=None), 401, "unauthenticated")
    assert "token" in refused["detail"]


def test_users_are_created_listed_updated_and_deleted(api: Api) -> None:
    made = api.call("POST", "/users", json={"name": "ana", "password": "correct-horse"})
    assert made.status_code == 201, made.text
    assert made.json()["has_password"] is True
    assert '"password"' not in made.text
    assert "correct-horse" not in made.text

    duplicate = _problem(api.call("POST", "/users", json={"name": "ana"}), 409, "already_exists")
    assert "ana" in duplicate["detail"]
    short = _problem(
        api.call("POST", "/users", json={"name": "bob", "password": "short"}),
        400,
        "invalid_argument",
    )
    assert "8" in short["detail"]
    _problem(api.call("POST", "/users", json={"name": "Bad Name!"}), 400, "invalid_argument")
    _problem(
        api.call("POST", "/users", json={"name": "x", "role": "admin"}), 422, "invalid_request"
    )

    names = [u["name"] for u in api.call("GET", "/users").json()]
    assert names == sorted(names)
    assert {"admin", "ana"} <= set(names)

    changed = api.call("PATCH", "/users/ana", json={"email": "ana@example.com", "disabled": True})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["email"], changed.json()["disabled"]) == ("ana@example.com", True)
    assert api.call("GET", "/users/ana").json()["disabled"] is True
    enabled = api.call("PATCH", "/users/ana", json={"disabled": False}).json()
    assert (enabled["disabled"], enabled["email"]) == (False, "ana@example.com")
    _problem(api.call("PATCH", "/users/ana", json={"password": "1234567"}), 400, "invalid_argument")

    assert api.call("DELETE", "/users/ana").status_code == 204
    _problem(api.call("GET", "/users/ana"), 404, "not_found")
    _problem(api.call("DELETE", "/users/ana"), 404, "not_found")


def test_a_disabled_user_is_refused_until_enabled(api: Api) -> None:
    assert api.call("POST", "/users", json={"name": "ana"}).status_code == 201
    _, secret = _token(api, "ana")
    assert api.call("GET", "/me", token=secret).json()["name"] == "ana"

    assert api.call("PATCH", "/users/ana", json={"disabled": True}).status_code == 200
    refused = _problem(api.call("GET", "/me", token=secret), 401, "unauthenticated")
    assert "disabled" in refused["detail"]
    assert api.call("PATCH", "/users/ana", json={"disabled": False}).status_code == 200
    assert api.call("GET", "/me", token=secret).status_code == 200


def test_teams_hold_members_and_their_grants_reach_them(api: Api) -> None:
    assert api.call("POST", "/users", json={"name": "ana"}).status_code == 201
    made = api.call("POST", "/teams", json={"name": "ml"})
    assert made.status_code == 201, made.text
    assert made.json()["members"] == []
    _problem(api.call("POST", "/teams", json={"name": "ana"}), 409, "already_exists")

    joined = api.call("PUT", "/teams/ml/members/ana")
    assert joined.status_code == 200, joined.text
    assert joined.json()["members"] == ["ana"]
    _problem(api.call("PUT", "/teams/ml/members/nobody"), 404, "not_found")
    assert [t["members"] for t in api.call("GET", "/teams").json()] == [["ana"]]

    granted = api.call("POST", "/grants", json={"role": "viewer", "team": "ml"})
    assert granted.status_code == 201, granted.text
    _, secret = _token(api, "ana")
    me = api.call("GET", "/me", token=secret).json()
    assert (me["global_role"], me["teams"]) == ("viewer", ["ml"])

    left = api.call("DELETE", "/teams/ml/members/ana")
    assert left.status_code == 200, left.text
    assert left.json()["members"] == []
    assert api.call("DELETE", "/teams/ml").status_code == 204
    assert api.call("GET", "/teams").json() == []
    _problem(api.call("DELETE", "/teams/ml"), 404, "not_found")


def test_grants_are_made_filtered_and_revoked(api: Api) -> None:
    assert api.call("POST", "/users", json={"name": "ana"}).status_code == 201
    on_model = api.call(
        "POST", "/grants", json={"role": "maintainer", "user": "ana", "model": "churn"}
    )
    assert on_model.status_code == 201, on_model.text
    grant = on_model.json()
    assert (grant["subject"], grant["subject_kind"], grant["role"], grant["model"]) == (
        "ana",
        "user",
        "maintainer",
        "churn",
    )
    assert grant["created_by"] == "admin"
    everywhere = api.call("POST", "/grants", json={"role": "viewer", "user": "ana"}).json()

    assert [g["id"] for g in api.call("GET", "/grants", params={"model": "churn"}).json()] == [
        grant["id"]
    ]
    mine = {g["id"] for g in api.call("GET", "/grants", params={"subject": "ana"}).json()}
    assert mine == {grant["id"], everywhere["id"]}
    _, secret = _token(api, "ana")
    me = api.call("GET", "/me", token=secret).json()
    assert (me["global_role"], me["model_roles"]) == ("viewer", {"churn": "maintainer"})

    bad_role = _problem(
        api.call("POST", "/grants", json={"role": "owner", "user": "ana"}), 400, "invalid_argument"
    )
    assert "maintainer" in bad_role["detail"]  # names the roles there are
    _problem(
        api.call("POST", "/grants", json={"role": "viewer", "user": "ana", "team": "ml"}),
        400,
        "invalid_argument",
    )
    _problem(api.call("DELETE", "/grants/99999"), 404, "not_found")
    assert api.call("DELETE", f"/grants/{grant['id']}").status_code == 204
    assert api.call("GET", "/grants", params={"model": "churn"}).json() == []


def test_a_token_secret_appears_only_in_the_reply_that_creates_it(api: Api) -> None:
    assert api.call("POST", "/users", json={"name": "ana"}).status_code == 201
    assert api.call("POST", "/grants", json={"role": "viewer", "user": "ana"}).status_code == 201
    body = {
        "user": "ana",
        "name": "laptop",
        "expires_in_seconds": 3600,
        "models": ["churn"],
        "read_only": True,
        "tier": "silver",
        "rate_limit": "50/second",
        "rows_per_day": 1000,
    }
    made = api.call("POST", "/tokens", json=body)
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    token = made.json()
    secret = token["secret"]
    assert secret.startswith(f"crl_{token['id']}_")
    assert (token["user"], token["kind"], token["models"], token["tier"]) == (
        "ana",
        "api",
        ["churn"],
        "silver",
    )
    assert token["expires_at"] is not None
    assert token["revoked_at"] is None

    for reply in (api.call("GET", "/tokens", params={"user": "ana"}), api.call("GET", "/tokens")):
        assert reply.status_code == 200, reply.text
        assert secret not in reply.text
        assert secret.rsplit("_", 1)[1] not in reply.text
        assert all("secret" not in t and "secret_hash" not in t for t in reply.json())
    listed = api.call("GET", "/tokens", params={"user": "ana"}).json()
    assert [t["id"] for t in listed] == [token["id"]]

    me = api.call("GET", "/me", token=secret).json()
    assert (me["name"], me["token_id"], me["scope"], me["read_only"]) == (
        "ana",
        token["id"],
        ["churn"],
        True,
    )
    assert (me["tier"], me["rate_limit"], me["rows_per_day"]) == ("silver", "50/second", 1000)

    assert api.call("DELETE", f"/tokens/{token['id']}").status_code == 204
    refused = _problem(api.call("GET", "/me", token=secret), 401, "unauthenticated")
    assert "revoked" in refused["detail"]
    _problem(api.call("DELETE", "/tokens/000000000000"), 404, "not_found")
    _problem(
        api.call("POST", "/tokens", json={"name": "x", "tier": "platinum"}), 422, "invalid_request"
    )


def test_the_service_decides_who_may_manage_identities(api: Api) -> None:
    assert api.call("POST", "/users", json={"name": "ana"}).status_code == 201
    assert api.call("POST", "/grants", json={"role": "viewer", "user": "ana"}).status_code == 201
    _, secret = _token(api, "ana")

    _problem(
        api.call("POST", "/users", token=secret, json={"name": "eve"}), 403, "permission_denied"
    )
    _problem(
        api.call("POST", "/grants", token=secret, json={"role": "admin", "user": "ana"}),
        403,
        "permission_denied",
    )
    # Anyone may make and list tokens of their own, but not gold ones nor others'.
    own = api.call("POST", "/tokens", token=secret, json={"name": "mine"})
    assert own.status_code == 201, own.text
    assert own.json()["user"] == "ana"
    _problem(
        api.call("POST", "/tokens", token=secret, json={"name": "x", "tier": "gold"}),
        403,
        "permission_denied",
    )
    _problem(
        api.call("POST", "/tokens", token=secret, json={"name": "x", "user": "admin"}),
        403,
        "permission_denied",
    )
    listed = api.call("GET", "/tokens", token=secret).json()
    assert {t["user"] for t in listed} == {"ana"}


def test_the_last_admin_cannot_delete_or_disable_itself(api: Api) -> None:
    for method, path, body in [
        ("DELETE", "/users/admin", None),
        ("PATCH", "/users/admin", {"disabled": True}),
    ]:
        problem = _problem(api.call(method, path, json=body), 409, "conflict")
        assert "no enabled user with the admin role" in problem["detail"]
    assert api.call("GET", "/me").status_code == 200  # nothing was written
