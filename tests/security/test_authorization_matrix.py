"""Every route of the app, called by every role over real HTTP, against an explicit table.

The table maps each route (method, path template) to the least role that may call it. A route
that is not in the table fails the suite (a new route that forgets authorisation cannot slip
in), and so does a table entry whose route is gone. Each route is then called with no token
and with the token of each role, on one real server: below the route's role the answer must be
401 (no token) or 403; at or above it, neither.

The roles form a ladder: ``viewer``, ``consumer`` and ``contributor`` are global grants; the
``maintainer`` is a global contributor who maintains model ``m`` (and only it); ``admin`` is a
global admin. Requests use seeded things (model ``m`` with versions 1 and 2 and alias
``champion``, consumer ``c``, config ``cfg``, …); routes that delete use things of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Mount

from corral import Client
from corral.access import Role
from corral.api.app import create_app
from corral.config import Settings
from corral.wiring import open_corral
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import example_records, register_classifiers, training_data

LADDER = ("viewer", "consumer", "contributor", "maintainer", "admin")
RANK = {name: rank for rank, name in enumerate(LADDER)}

# Answered whoever calls: probes, scrapers, the API docs, the login page and static files.
PUBLIC = {
    ("GET", "/api/v1/health"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/logout"),
    ("POST", "/logout"),
    ("GET", "/"),  # a redirect to /models, which is checked
}
PUBLIC_MOUNTS = {"/static", "/static/api-docs"}

_ROW = training_data(seed=11, rows=1)[0]
RECORDS = example_records(_ROW)
OIP_BODY = {
    "inputs": [{"name": "input-0", "shape": [1, 20], "datatype": "FP64", "data": _ROW[0].tolist()}]
}


@dataclass(frozen=True)
class Case:
    """The least role a route needs, and a request that is valid enough to get past parsing."""

    role: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    form: dict[str, str] | None = None  # a web form: sent with its CSRF token and cookie
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


V1 = "/api/v1"
M = f"{V1}/models/{{name}}"
VERSION = f"{M}/versions/{{ref}}"

TABLE: dict[tuple[str, str], Case] = {
    # -- models and versions
    ("GET", f"{V1}/models"): Case("viewer"),
    ("POST", f"{V1}/models"): Case("contributor", json={"name": "made-by-matrix"}),
    ("GET", M): Case("viewer"),
    ("PATCH", M): Case("maintainer", json={"description": "checked"}),
    ("DELETE", M): Case("admin", params={"name": "doomed"}),
    ("POST", f"{V1}/uploads"): Case("contributor"),
    ("PUT", f"{V1}/uploads/{{upload_id}}/files/{{path:path}}"): Case("contributor", content=b"x"),
    ("DELETE", f"{V1}/uploads/{{upload_id}}"): Case("contributor"),
    ("POST", f"{M}/versions"): Case("contributor", json={"upload_id": "nope"}),
    ("GET", f"{M}/versions"): Case("viewer"),
    ("GET", f"{V1}/versions"): Case("viewer"),
    ("GET", VERSION): Case("viewer"),
    ("POST", f"{VERSION}/deprecation"): Case("maintainer", json={"message": "use 2"}),
    ("DELETE", f"{VERSION}/deprecation"): Case("maintainer"),
    ("PUT", f"{VERSION}/trust"): Case("admin", json={"trusted": True, "reason": "reviewed"}),
    ("GET", f"{VERSION}/trust"): Case("viewer"),
    ("PUT", f"{VERSION}/quarantine"): Case(
        "admin", json={"quarantined": False, "reason": "reviewed"}
    ),
    ("GET", f"{VERSION}/quarantine"): Case("viewer"),
    ("POST", f"{VERSION}/verify"): Case("viewer"),
    ("POST", f"{VERSION}/sign"): Case("maintainer"),
    ("GET", f"{VERSION}/files/{{path:path}}"): Case("viewer"),
    ("POST", f"{V1}/gc"): Case("admin"),
    # -- aliases, configs, consumers
    ("GET", f"{M}/aliases"): Case("viewer"),
    ("GET", f"{M}/aliases/{{alias}}"): Case("viewer"),
    ("PUT", f"{M}/aliases/{{alias}}"): Case("maintainer", json={"version": 1, "reason": "same"}),
    ("DELETE", f"{M}/aliases/{{alias}}"): Case("maintainer", params={"alias": "gone"}),
    ("POST", f"{M}/aliases/{{alias}}/rollback"): Case("maintainer", params={"alias": "temp"}),
    ("GET", f"{M}/alias-history"): Case("viewer"),
    ("GET", f"{M}/resolve/{{ref}}"): Case("viewer"),
    ("GET", f"{M}/configs"): Case("viewer"),
    ("POST", f"{M}/configs/{{config}}"): Case("maintainer", json={"values": {}}),
    ("GET", f"{M}/configs/{{config}}"): Case("viewer"),
    ("GET", f"{V1}/consumers"): Case("viewer"),
    ("POST", f"{M}/consumers"): Case("maintainer", json={"name": "new-c", "alias": "champion"}),
    ("GET", f"{M}/consumers/{{consumer}}"): Case("viewer"),
    ("PATCH", f"{M}/consumers/{{consumer}}"): Case("maintainer", json={"alias": "champion"}),
    ("DELETE", f"{M}/consumers/{{consumer}}"): Case("maintainer", params={"consumer": "c2"}),
    ("GET", f"{M}/consumers/{{consumer}}/resolve"): Case("viewer"),
    # -- predictions (the plain and OIP hot paths are answered before FastAPI's routing)
    ("POST", f"{M}/predict"): Case("consumer", json={"inputs": RECORDS}),
    ("GET", "/v2"): Case("viewer"),  # says nothing of any model, but needs a caller
    ("GET", "/v2/models/{name}"): Case("viewer"),
    ("GET", "/v2/models/{name}/versions/{version}"): Case("viewer"),
    ("GET", "/v2/models/{name}/ready"): Case("viewer"),
    ("GET", "/v2/models/{name}/versions/{version}/ready"): Case("viewer"),
    ("POST", "/v2/models/{name}/infer"): Case("consumer", json=OIP_BODY),
    ("POST", "/v2/models/{name}/versions/{version}/infer"): Case("consumer", json=OIP_BODY),
    # -- audit
    ("GET", f"{V1}/audit"): Case("admin"),
    ("GET", f"{V1}/audit/verify"): Case("admin"),
    # -- monitoring
    ("GET", f"{M}/monitoring/status"): Case("viewer"),
    ("GET", f"{M}/monitoring/performance"): Case("viewer"),
    ("GET", f"{M}/monitoring/drift"): Case("viewer"),
    ("POST", f"{M}/feedback"): Case("consumer", json=[{"request_id": "r1", "label": 1}]),
    ("GET", f"{M}/objectives"): Case("viewer"),
    ("POST", f"{M}/objectives"): Case("maintainer", json={"objective": "accuracy >= 0.5 over 1d"}),
    ("DELETE", f"{M}/objectives/{{objective_id}}"): Case(
        "maintainer", params={"objective_id": "{doomed_objective}"}
    ),
    ("GET", f"{M}/objectives/{{objective_id}}/history"): Case("viewer"),
    ("PUT", f"{M}/monitoring"): Case("maintainer", json={}),
    ("POST", f"{V1}/monitoring/evaluate"): Case("maintainer", query={"model": "m"}),
    ("GET", f"{V1}/alerts"): Case("viewer"),
    ("GET", f"{V1}/alerts/{{alert_id}}/deliveries"): Case("admin"),
    ("GET", f"{V1}/webhooks"): Case("viewer"),
    ("POST", f"{V1}/webhooks"): Case(
        "maintainer", json={"url": "http://127.0.0.1:9/new", "secret": "s" * 32, "model": "m"}
    ),
    ("GET", f"{V1}/webhooks/deliveries"): Case("admin"),
    ("DELETE", f"{V1}/webhooks/{{webhook_id}}"): Case("maintainer"),
    # -- web pages
    ("GET", "/models"): Case("viewer"),
    ("GET", "/models/{name}"): Case("viewer"),
    ("GET", "/models/{name}/monitoring"): Case("viewer"),
    ("GET", "/monitoring"): Case("viewer"),
    ("GET", "/serving"): Case("viewer"),
    ("GET", "/audit"): Case("admin"),
    # Releasing v2, which is not quarantined, changes nothing; quarantining a version that
    # does not exist (404 for the admin) keeps v1 and v2 servable for the other cases.
    ("POST", "/models/{name}/versions/{number}/release"): Case(
        "admin", params={"number": "2"}, form={"reason": "matrix"}
    ),
    ("POST", "/models/{name}/versions/{number}/quarantine"): Case(
        "admin", params={"number": "99"}, form={"reason": "matrix"}
    ),
    # -- identity (the service decides: admins for users and teams, a model's maintainer for
    # grants on it, anyone signed in for their own tokens)
    ("GET", f"{V1}/me"): Case("viewer"),
    ("POST", f"{V1}/users"): Case("admin", json={"name": "made-by-matrix"}),
    ("GET", f"{V1}/users"): Case("admin"),
    ("GET", f"{V1}/users/{{name}}"): Case("admin", params={"name": "zed"}),
    ("PATCH", f"{V1}/users/{{name}}"): Case(
        "admin", params={"name": "zed"}, json={"email": "zed@example.com"}
    ),
    ("DELETE", f"{V1}/users/{{name}}"): Case("admin", params={"name": "doomed-user"}),
    ("POST", f"{V1}/teams"): Case("admin", json={"name": "made-team"}),
    ("GET", f"{V1}/teams"): Case("viewer"),
    ("DELETE", f"{V1}/teams/{{name}}"): Case("admin", params={"name": "doomed-team"}),
    ("PUT", f"{V1}/teams/{{name}}/members/{{user}}"): Case(
        "admin", params={"name": "ml", "user": "zed"}
    ),
    ("DELETE", f"{V1}/teams/{{name}}/members/{{user}}"): Case(
        "admin", params={"name": "ml", "user": "yan"}
    ),
    ("POST", f"{V1}/grants"): Case(
        "maintainer", json={"role": "viewer", "user": "zed", "model": "m"}
    ),
    ("GET", f"{V1}/grants"): Case("viewer"),
    ("DELETE", f"{V1}/grants/{{grant_id}}"): Case("maintainer"),
    ("POST", f"{V1}/tokens"): Case("viewer", json={"name": "made-by-matrix"}),
    ("GET", f"{V1}/tokens"): Case("viewer"),
    ("DELETE", f"{V1}/tokens/{{token_id}}"): Case("admin"),
    # -- the account and user administration pages
    ("GET", "/account"): Case("viewer"),
    ("POST", "/account/tokens"): Case("viewer", form={"name": "web-token", "days": "1"}),
    ("POST", "/account/tokens/{token_id}/revoke"): Case("admin", form={}),
    ("GET", "/admin/users"): Case("admin"),
    ("POST", "/admin/users"): Case("admin", form={"name": "web-made"}),
    ("POST", "/admin/grants"): Case(
        "maintainer", form={"subject": "xia", "kind": "user", "role": "viewer", "model": "m"}
    ),
    ("POST", "/admin/grants/{grant_id}/revoke"): Case(
        "maintainer", params={"grant_id": "{web_grant}"}, form={}
    ),
}
CSRF = "matrix-csrf-token"

DEFAULTS = {
    "name": "m",
    "ref": "1",
    "version": "1",
    "alias": "champion",
    "config": "cfg",
    "consumer": "c",
    "path": "model.skops",
    "upload_id": "nope",
    "objective_id": "{objective}",
    "alert_id": "1",
    "webhook_id": "{webhook}",
    "grant_id": "{grant}",
    "token_id": "{token}",
}


def _routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, with included routers flattened (FastAPI includes them lazily)."""
    for route in routes:
        if hasattr(route, "effective_candidates"):
            yield from _routes(route.effective_candidates())
        else:
            yield route


def app_routes(app: FastAPI) -> tuple[set[tuple[str, str]], set[str]]:
    """``(method, path)`` of each route (HEAD aside: it follows GET), and each mount's path."""
    routes: set[tuple[str, str]] = set()
    mounts: set[str] = set()
    for route in _routes(app.routes):
        original = getattr(route, "original_route", route)
        if isinstance(original, Mount):
            mounts.add(original.path)
            continue
        methods = getattr(original, "methods", None)
        assert methods, f"route {route!r} has no methods: add it to the table's logic"
        routes.update((method, route.path) for method in methods - {"HEAD"})
    return routes, mounts


@dataclass
class Matrix:
    url: str
    tokens: dict[str, str]
    ids: dict[str, str]


def _seed(settings: Settings, tmp: Path) -> dict[str, str]:
    """Model ``m`` (versions 1 and 2, aliases, consumers, a config, objectives, a webhook)."""
    with Client(settings=settings, actor="seeder") as client:
        register_classifiers(client, tmp / "models", name="m")
        client.set_alias("m", "temp", 2, reason="seed")
        client.set_alias("m", "temp", 1, reason="seed")  # something to roll back to
        client.set_alias("m", "gone", 2, reason="seed")
        client.create_consumer("c", "m", alias="champion")
        client.create_consumer("c2", "m", alias="champion")
        client.create_config("m", "cfg", {})
        client.register("doomed", tmp / "models" / "v1", flavor="sklearn")
    wired = open_corral(settings)
    try:
        monitoring = wired.monitoring
        kept = monitoring.create_objective("m", "accuracy >= 0.5 over 1d")
        doomed = monitoring.create_objective("m", "accuracy >= 0.6 over 1d")
        hook = monitoring.create_webhook("http://127.0.0.1:9/hook", "s" * 32, model="m")
    finally:
        wired.close()
    return {"objective": str(kept.id), "doomed_objective": str(doomed.id), "webhook": str(hook.id)}


def _tokens(settings: Settings, ids: dict[str, str]) -> dict[str, str]:
    """A user and an API token per rung of the ladder (made as the system, like a first start),
    and the users, teams, grants and tokens the identity routes act on (their ids in ``ids``)."""
    grants: dict[str, list[tuple[Role, str | None]]] = {
        "viewer": [(Role.VIEWER, None)],
        "consumer": [(Role.CONSUMER, None)],
        "contributor": [(Role.CONTRIBUTOR, None)],
        "maintainer": [(Role.CONTRIBUTOR, None), (Role.MAINTAINER, "m")],
        "admin": [(Role.ADMIN, None)],
    }
    wired = open_corral(settings)
    try:
        identity = wired.identity
        tokens = {}
        for rung, given in grants.items():
            identity.create_user(f"{rung}-user")
            for role, model in given:
                identity.grant(role, user=f"{rung}-user", model=model)
            _, tokens[rung] = identity.create_token(f"{rung}-user", name="matrix")
        for name in ("zed", "yan", "xia", "wen", "doomed-user"):
            identity.create_user(name)
        identity.create_team("ml")
        identity.add_member("ml", "yan")
        identity.create_team("doomed-team")
        ids["grant"] = str(identity.grant(Role.VIEWER, user="yan", model="m").id)
        ids["web_grant"] = str(identity.grant(Role.VIEWER, user="wen", model="m").id)
        ids["token"] = identity.create_token("zed", name="zeds")[0].id
    finally:
        wired.close()
    return tokens


def _settings(tmp: Path) -> Settings:
    return Settings(
        home=tmp / "home",
        anonymous_role="none",
        outbound_allow_private=True,
        monitor_evaluate_seconds=0,
    )


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    tmp = tmp_path_factory.mktemp("matrix")
    settings = _settings(tmp)
    ids = _seed(settings, tmp)
    tokens = _tokens(settings, ids)
    with ServerThread(create_app(settings)) as server:
        yield Matrix(server.url, tokens, ids)


def test_every_route_is_in_the_table_and_every_entry_is_a_route(tmp_path: Path) -> None:
    routes, mounts = app_routes(create_app(_settings(tmp_path)))
    unlisted = sorted(routes - PUBLIC - set(TABLE))
    stale = sorted(set(TABLE) - routes)
    assert not unlisted, f"routes without a role in TABLE (add them, or to PUBLIC): {unlisted}"
    assert not stale, f"TABLE names routes that no longer exist: {stale}"
    assert mounts == PUBLIC_MOUNTS
    assert not (PUBLIC & set(TABLE))


def _url(path: str, case: Case, ids: dict[str, str]) -> str:
    values = {**DEFAULTS, **case.params}
    values = {k: v.format_map(ids) for k, v in values.items()}
    return path.replace(":path}", "}").format_map(values)


def _page(path: str) -> bool:
    return not path.startswith(("/api/", "/v2"))


def _refused_without_a_token(path: str, response: httpx.Response) -> bool:
    if response.status_code == 401:
        return True
    # A page may send the visitor to the login form instead.
    location = response.headers.get("location", "")
    return _page(path) and response.is_redirect and "/login" in location


@pytest.mark.parametrize(("method", "path"), sorted(TABLE), ids=lambda v: str(v))
def test_each_role_is_refused_below_the_routes_role_and_let_through_at_it(
    matrix: Matrix, method: str, path: str
) -> None:
    case = TABLE[(method, path)]
    url = _url(path, case, matrix.ids)
    problems = []
    with httpx.Client(base_url=matrix.url, timeout=60, follow_redirects=False) as http:
        for rung in (None, *LADDER):
            headers = dict(case.headers)
            if rung is not None:
                headers["Authorization"] = f"Bearer {matrix.tokens[rung]}"
            form = None
            if case.form is not None:  # a valid CSRF pair: the role must be what refuses
                form = {**case.form, "csrf": CSRF}
                headers["Cookie"] = f"corral_csrf={CSRF}"
            response = http.request(
                method,
                url,
                json=case.json,
                content=case.content,
                data=form,
                params=case.query,
                headers=headers,
            )
            status = response.status_code
            said = f"{rung or 'no token'}: {method} {url} -> {status} {response.text[:300]}"
            if rung is None:
                if not _refused_without_a_token(path, response):
                    problems.append(f"expected 401: {said}")
            elif RANK[rung] < RANK[case.role]:
                if status != 403:
                    problems.append(f"expected 403 (needs {case.role}): {said}")
            elif status in (401, 403):
                problems.append(f"expected to be let through (needs {case.role}): {said}")
    assert not problems, "\n".join(problems)
