"""The front door: who each HTTP request is, from a Bearer token or the session cookie.

A real server on loopback (``ServerThread``) with anonymous access closed
(``anonymous_role="none"``) unless a test opens it; tokens come from the real first-start
bootstrap and the identity service, and requests are plain httpx.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from corral import Client
from corral.access import Role
from corral.api.app import create_app
from corral.config import Settings
from corral.errors import PermissionDenied, Unauthenticated
from corral.wiring import Corral, open_corral
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import FEATURES, register_classifiers

PROBLEM = "application/problem+json"
ROW = [{name: 0.5 for name in FEATURES}]
OIP_BODY = {
    "inputs": [{"name": name, "shape": [1], "datatype": "FP64", "data": [0.5]} for name in FEATURES]
}


@dataclass
class Site:
    url: str
    corral: Corral  # the server's own services: what they change, its next request sees
    admin: str  # the token the first start printed

    def get(self, path: str, token: str | None = None, **kwargs: object) -> httpx.Response:
        return self.request("GET", path, token, **kwargs)

    def request(
        self, method: str, path: str, token: str | None = None, **kwargs: object
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def _site(tmp_path: Path, anonymous_role: str) -> Iterator[Site]:
    settings = Settings(
        home=tmp_path / "home", anonymous_role=anonymous_role, monitor_evaluate_seconds=0
    )
    with Client(settings=settings, actor="tester") as local:
        register_classifiers(local, tmp_path)
    wired = open_corral(settings)
    admin = wired.identity.bootstrap_admin()
    assert admin is not None
    try:
        with ServerThread(create_app(settings, corral=wired)) as server:
            yield Site(server.url, wired, admin)
    finally:
        wired.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A server whose anonymous callers have no role at all."""
    yield from _site(tmp_path, "none")


@pytest.fixture
def open_site(tmp_path: Path) -> Iterator[Site]:
    """A server whose anonymous callers may read."""
    yield from _site(tmp_path, "viewer")


def _assert_401_problem(reply: httpx.Response, *words: str) -> None:
    assert reply.status_code == 401, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM)
    assert reply.headers["www-authenticate"].startswith("Bearer")
    body = reply.json()
    assert (body["status"], body["code"]) == (401, "unauthenticated")
    for word in words:
        assert word in body["detail"], body["detail"]


def test_a_request_without_a_token_is_refused_with_a_bearer_challenge(site: Site) -> None:
    for method, path in [
        ("GET", "/api/v1/models"),
        ("POST", "/api/v1/models"),
        ("POST", "/api/v1/models/clf/predict"),
    ]:
        _assert_401_problem(site.request(method, path, json={}), "Authorization: Bearer")


def test_the_bootstrap_token_reads_writes_and_predicts(site: Site) -> None:
    assert site.get("/api/v1/models", site.admin).json()["total"] == 1
    made = site.request("POST", "/api/v1/models", site.admin, json={"name": "churn"})
    assert made.status_code == 201, made.text
    predicted = site.request("POST", "/api/v1/models/clf/predict", site.admin, json={"inputs": ROW})
    assert predicted.status_code == 200, predicted.text
    assert len(predicted.json()["predictions"]) == 1


@pytest.mark.parametrize(
    "authorization",
    ["Bearer crl_000000000000_not-a-real-secret", "Bearer nonsense", "Bearer", "Basic YTpi"],
)
def test_a_malformed_or_unknown_token_is_refused_with_a_clear_detail(
    site: Site, authorization: str
) -> None:
    reply = site.get("/api/v1/models", headers={"Authorization": authorization})
    _assert_401_problem(reply)
    detail = reply.json()["detail"]
    assert "token" in detail or "Bearer" in detail, detail
    assert reply.headers["x-request-id"]


def test_a_revoked_token_stops_working_on_the_very_next_request(site: Site) -> None:
    token, secret = site.corral.identity.create_token("admin", name="laptop")
    assert site.get("/api/v1/models", secret).status_code == 200  # now cached in the server
    assert site.request(
        "POST", "/api/v1/models/clf/predict", secret, json={"inputs": ROW}
    ).is_success

    site.corral.identity.revoke_token(token.id)

    _assert_401_problem(site.get("/api/v1/models", secret), "revoked")
    _assert_401_problem(
        site.request("POST", "/api/v1/models/clf/predict", secret, json={"inputs": ROW}),
        "revoked",
    )
    assert site.get("/api/v1/models", site.admin).status_code == 200  # others still work


def test_an_expired_token_is_refused_even_when_it_was_cached(site: Site) -> None:
    _, secret = site.corral.identity.create_token(
        "admin", name="short", expires_in=timedelta(seconds=1)
    )
    assert site.get("/api/v1/models", secret).status_code == 200
    time.sleep(1.3)
    _assert_401_problem(site.get("/api/v1/models", secret), "expired")


def test_a_disabled_users_token_is_refused(site: Site) -> None:
    site.corral.identity.create_user("ana")
    site.corral.identity.grant(Role.VIEWER, user="ana")
    _, secret = site.corral.identity.create_token("ana", name="ci")
    assert site.get("/api/v1/models", secret).status_code == 200
    site.corral.identity.disable_user("ana")
    _assert_401_problem(site.get("/api/v1/models", secret), "disabled")


def test_oip_routes_answer_401_in_the_protocols_error_shape(site: Site) -> None:
    for token in (None, "crl_000000000000_not-a-real-secret"):
        for method, path, body in [
            ("POST", "/v2/models/clf/infer", OIP_BODY),
            ("POST", "/v2/models/clf/versions/1/infer", OIP_BODY),
            ("GET", "/v2/models/clf", None),
        ]:
            reply = site.request(method, path, token, json=body)
            assert reply.status_code == 401, reply.text
            assert reply.headers["content-type"] == "application/json"
            assert reply.headers["www-authenticate"].startswith("Bearer")
            assert set(reply.json()) == {"error"}
            assert reply.json()["error"]
    inferred = site.request("POST", "/v2/models/clf/infer", site.admin, json=OIP_BODY)
    assert inferred.status_code == 200, inferred.text


@pytest.mark.parametrize(
    "path",
    [
        "/v2/health/live",
        "/v2/health/ready",
        "/api/v1/health",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/redoc",
        "/static/corral.css",
        "/static/api-docs/swagger-ui-bundle.js",
        "/static/api-docs/redoc.standalone.js",
    ],
)
def test_public_paths_answer_without_a_token_and_despite_a_bad_one(site: Site, path: str) -> None:
    assert site.get(path).status_code == 200
    assert site.get(path, "crl_000000000000_not-a-real-secret").status_code == 200


def test_anonymous_viewers_read_but_need_a_token_to_predict_or_write(open_site: Site) -> None:
    site = open_site
    listed = site.get("/api/v1/models")
    assert listed.status_code == 200, listed.text
    assert listed.json()["total"] == 1
    assert site.get("/api/v1/models/clf/versions").status_code == 200

    _assert_401_problem(
        site.request("POST", "/api/v1/models/clf/predict", json={"inputs": ROW}), "predict"
    )
    oip = site.request("POST", "/v2/models/clf/infer", json=OIP_BODY)
    assert oip.status_code == 401, oip.text
    assert oip.headers["www-authenticate"].startswith("Bearer")
    assert "error" in oip.json()
    _assert_401_problem(site.request("POST", "/api/v1/models", json={"name": "churn"}))

    # A bad token is still refused: it is not quietly read as anonymous.
    _assert_401_problem(site.get("/api/v1/models", "crl_000000000000_not-a-real-secret"))
    assert site.request(
        "POST", "/api/v1/models/clf/predict", site.admin, json={"inputs": ROW}
    ).is_success


def test_the_audit_actor_is_the_token_user_not_a_header_it_sends(site: Site) -> None:
    made = site.request(
        "POST",
        "/api/v1/models",
        site.admin,
        json={"name": "churn"},
        headers={"X-Corral-Actor": "mallory"},
    )
    assert made.status_code == 201, made.text
    events = site.get("/api/v1/audit", site.admin, params={"target": "model:churn"}).json()
    assert [e["actor"] for e in events["items"]] == ["admin"]


def test_the_session_cookie_authenticates_and_a_stale_one_is_cleared(site: Site) -> None:
    token, secret = site.corral.identity.create_token("admin", name="browser")
    cookie = {"Cookie": f"theme=dark; corral_session={secret}"}
    assert site.get("/api/v1/models", headers=cookie).status_code == 200

    site.corral.identity.revoke_token(token.id)

    refused = site.get("/api/v1/models", headers=cookie)
    _assert_401_problem(refused, "revoked")
    assert "corral_session=;" in refused.headers["set-cookie"]
    # On a web page the stale cookie makes the request anonymous; the browser forgets it.
    page = site.get("/models", headers=cookie)
    assert page.status_code != 500
    assert "Max-Age=0" in page.headers["set-cookie"]
    # A Bearer token wins over a stale cookie.
    both = {**cookie, "Authorization": f"Bearer {site.admin}"}
    assert site.get("/api/v1/models", headers=both).status_code == 200


def test_the_sdk_sends_its_token_and_raises_the_servers_error_classes(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CORRAL_TOKEN", raising=False)
    with Client(site.url) as anonymous, pytest.raises(Unauthenticated, match="token"):
        anonymous.list_models()
    with (
        Client(site.url, token="crl_000000000000_not-a-real-secret") as wrong,
        pytest.raises(Unauthenticated),
    ):
        wrong.list_models()
    with Client(site.url, token=site.admin) as admin:
        assert [m.name for m in admin.list_models().items] == ["clf"]
        assert admin.predict("clf", ROW).rows == 1

    site.corral.identity.create_user("vic")
    site.corral.identity.grant(Role.VIEWER, user="vic")
    _, viewer = site.corral.identity.create_token("vic", name="sdk")
    monkeypatch.setenv("CORRAL_TOKEN", viewer)  # the default token of a Client
    with Client(site.url) as vic:
        assert vic.get_model("clf").name == "clf"
        with pytest.raises(PermissionDenied, match="vic"):
            vic.create_model("churn")


def test_a_session_cookie_reads_the_api_but_changes_nothing_through_it(site: Site) -> None:
    _, secret = site.corral.identity.create_token("admin", name="browser")
    cookie = {"Cookie": f"corral_session={secret}"}
    assert site.get("/api/v1/models", headers=cookie).status_code == 200
    for method, path, body in [
        ("POST", "/api/v1/models", {"name": "csrf"}),
        ("POST", "/api/v1/models/clf/predict", {"inputs": ROW}),
        ("POST", "/v2/models/clf/infer", OIP_BODY),
        ("DELETE", "/api/v1/models/clf", None),
    ]:
        refused = site.request(method, path, headers=cookie, json=body)
        assert refused.status_code == 403, refused.text
        assert "set-cookie" not in refused.headers  # the session itself stays valid
    assert site.get("/api/v1/models/clf", headers=cookie).status_code == 200
    events = site.get("/api/v1/audit", site.admin, params={"target": "model:csrf"}).json()
    assert events["items"] == []
