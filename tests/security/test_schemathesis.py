"""Schemathesis against the whole REST API of a real server, as an admin and as a viewer.

Each role gets its own server (``ServerThread``, anonymous access closed) on its own home,
seeded with model 'clf' (two scikit-learn versions, alias 'champion'), and a token made by
the real identity service. Schemathesis generates requests for every operation in
``/openapi.json`` (valid and invalid ones; path parameters are often swapped for the seeded
model, version and alias, so requests get past the 404s), and each reply must be:

- never a 5xx, and never a 401 (the token is valid);
- documented: its status and content type appear in the operation's responses and the body
  matches that schema; errors are the documented problem+json (OIP routes: ``{"error": …}``);
- for the viewer, never a success on a mutating method (POST, PUT, PATCH, DELETE): a viewer
  may read, nothing else, and predicting or sending feedback is refused with 403.

Bounded to a few examples per operation so the file runs in the normal suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from corral import Client
from corral.access import SYSTEM, Role, acting_as
from corral.api.app import create_app
from corral.config import Settings
from corral.wiring import Corral, open_corral
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import FEATURES, register_classifiers

pytestmark = [
    # Reporting a failure, hypothesis imports libcst, which warns (mypy_extensions).
    pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"),
    # Huge but finite generated inputs overflow in the model's own arithmetic: a served model
    # only warns, but warnings are errors here, in the server's thread too.
    pytest.mark.filterwarnings("ignore:overflow encountered in:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered in:RuntimeWarning"),
]

ROLES = ["admin", "viewer"]
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Writes a viewer may make: re-hashing a version's files is a read, and anyone signed in
# makes and revokes tokens of their own.
VIEWER_WRITES = {
    "/api/v1/models/{name}/versions/{ref}/verify",
    "/api/v1/tokens",
    "/api/v1/tokens/{token_id}",
}
# Path parameters that name what the seeded home holds.
KNOWN = {"name": "clf", "ref": "1", "version": "1", "alias": "champion"}
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
# The examples and the coverage phase (boundary values of each parameter) and a few random
# cases per operation; no stateful phase (its links would need documenting first).
CONFIG = {"phases": {"stateful": {"enabled": False}}}
# uvicorn's own reply to a request it cannot parse (a request line over its limit): it never
# reaches Corral, so it is not Corral's documented error.
UVICORN_REFUSAL = b"Invalid HTTP request received."
ROW = {name: 0.5 for name in FEATURES}


@dataclass
class Site:
    url: str
    role: str
    token: str
    corral: Corral  # the server's own services: what they change, its next request sees

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def restore(self) -> None:
        """Give the fuzzer back its role: the admin's fuzzed DELETE /grants/{id} and PATCH
        /users/{name} may hit the very grant and user the run stands on (ids start at 1)."""
        identity = self.corral.identity
        with acting_as(SYSTEM):
            if identity.get_user("fuzzer").disabled:
                identity.enable_user("fuzzer")
            granted = {g.role for g in identity.list_grants(subject="fuzzer") if g.model is None}
            if Role.parse(self.role) not in granted:
                identity.grant(Role.parse(self.role), user="fuzzer")


@pytest.fixture(scope="module", params=ROLES)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """A server whose only way in is a token of a user with the role of this run."""
    role: str = request.param
    tmp: Path = tmp_path_factory.mktemp(f"schemathesis-{role}")
    settings = Settings(
        home=tmp / "home",
        anonymous_role="none",
        monitor_evaluate_seconds=0,
        log_predictions=False,
    )
    with Client(settings=settings, actor="tester") as local:
        register_classifiers(local, tmp)
    wired = open_corral(settings)
    try:
        wired.identity.bootstrap_admin()
        wired.identity.create_user("fuzzer")
        wired.identity.grant(Role.parse(role), user="fuzzer")
        _, token = wired.identity.create_token("fuzzer", name="schemathesis")
        with ServerThread(create_app(settings, corral=wired)) as server:
            yield Site(server.url, role, token, wired)
    finally:
        wired.close()


@pytest.fixture
def api_schema(site: Site) -> Any:
    """The server's own OpenAPI document, with path parameters leaning to the seeded model."""
    loaded = schemathesis.openapi.from_url(
        f"{site.url}/openapi.json",
        config=schemathesis.Config.from_dict(CONFIG),
        headers=site.headers,
    )

    @loaded.hook
    def flatmap_path_parameters(context: Any, path_parameters: Any) -> Any:
        if not isinstance(path_parameters, dict):
            return st.just(path_parameters)
        if site.role == "admin" and context.operation.method.upper() == "DELETE":
            # Deleting the seeded model or its alias would leave later operations nothing
            # to work on; the viewer's deletes of them are the point (they must be refused).
            return st.just(path_parameters)
        known = {k: v for k, v in KNOWN.items() if k in path_parameters}
        return st.sampled_from([path_parameters, {**path_parameters, **known}])

    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=list(HealthCheck),
)
def test_api_replies_are_documented_and_respect_the_role(case: Any, site: Site) -> None:
    site.restore()
    response = case.call(base_url=site.url, headers=site.headers, timeout=60)
    if response.status_code == 400 and response.content == UVICORN_REFUSAL:
        return
    assert response.status_code != 401, f"the {site.role}'s token was refused: {response.text}"
    method = case.operation.method.upper()
    if site.role == "viewer" and method in MUTATING and case.path not in VIEWER_WRITES:
        assert response.status_code >= 400, (
            f"a viewer's {method} {case.formatted_path} succeeded ({response.status_code})"
        )
    case.validate_response(response, checks=CHECKS)


def test_viewer_may_not_predict_or_send_feedback(site: Site) -> None:
    """Valid requests on the seeded model: the viewer is refused with 403, the admin is not."""
    site.restore()
    requests = [
        ("/api/v1/models/clf/predict", {"inputs": [ROW]}),
        (
            "/v2/models/clf/infer",
            {
                "inputs": [
                    {"name": name, "shape": [1], "datatype": "FP64", "data": [0.5]}
                    for name in FEATURES
                ]
            },
        ),
        ("/api/v1/models/clf/feedback", [{"request_id": "r-1", "label": 1}]),
    ]
    for path, body in requests:
        reply = httpx.post(f"{site.url}{path}", json=body, headers=site.headers, timeout=60)
        if site.role == "viewer":
            assert reply.status_code == 403, (path, reply.text)
        else:
            assert reply.status_code < 400 or reply.status_code == 422, (path, reply.text)


HUGE = str(2**70)  # beyond the stores' 64-bit integers


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/v1/audit?offset={HUGE}"),
        ("GET", f"/api/v1/models?offset={HUGE}"),
        ("GET", f"/api/v1/models/clf/versions/{HUGE}"),
        ("GET", "/api/v1/models/clf/versions/²"),  # a digit that int() refuses
        ("GET", f"/api/v1/models/clf/resolve/{HUGE}"),
        ("GET", f"/api/v1/models/clf/configs/c?revision={HUGE}"),
        ("GET", f"/api/v1/models/clf/objectives/{HUGE}/history"),
        ("DELETE", f"/api/v1/models/clf/objectives/{HUGE}"),
        ("GET", f"/api/v1/alerts/{HUGE}/deliveries"),
        ("GET", f"/api/v1/webhooks/deliveries?alert_id={HUGE}"),
        ("DELETE", f"/api/v1/webhooks/{HUGE}"),
        ("DELETE", f"/api/v1/grants/{HUGE}"),
    ],
)
def test_numbers_out_of_range_are_the_callers_error(site: Site, method: str, path: str) -> None:
    """Once 500s (SQLite's OverflowError, int('²')): now a documented 4xx problem."""
    reply = httpx.request(method, f"{site.url}{path}", headers=site.headers, timeout=60)
    assert 400 <= reply.status_code < 500, (path, reply.status_code, reply.text)
    assert reply.status_code != 401, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json"), reply.text
