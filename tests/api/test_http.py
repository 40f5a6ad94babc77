"""The REST surface: problem+json errors, status codes, headers, OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from corral.config import Settings
from tests.fixtures.corral import ServerThread

PROBLEM = "application/problem+json"


@pytest.fixture
def api(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as http:
        yield http


def _version(api: httpx.Client, model: str, content: bytes = b"bytes") -> dict:  # type: ignore[type-arg]
    upload = api.post("/api/v1/uploads").json()["upload_id"]
    assert api.put(f"/api/v1/uploads/{upload}/files/model.bin", content=content).status_code == 201
    response = api.post(f"/api/v1/models/{model}/versions", json={"upload_id": upload})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _assert_problem(response, status: int, code: str, *names: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == status
    assert body["code"] == code
    for name in names:
        assert name in body["detail"]


def test_unknown_model_version_and_alias_are_404_naming_them(api: httpx.Client) -> None:
    _assert_problem(api.get("/api/v1/models/ghost"), 404, "not_found", "'ghost'")
    api.post("/api/v1/models", json={"name": "churn"})
    _assert_problem(api.get("/api/v1/models/churn/versions/7"), 404, "not_found", "version 7")
    _assert_problem(api.get("/api/v1/models/churn/versions/prod"), 404, "not_found", "alias 'prod'")
    _assert_problem(
        api.put("/api/v1/models/churn/aliases/prod", json={"version": 3}),
        404,
        "not_found",
        "version 3",
    )


def test_duplicate_model_is_409(api: httpx.Client) -> None:
    assert api.post("/api/v1/models", json={"name": "churn"}).status_code == 201
    _assert_problem(
        api.post("/api/v1/models", json={"name": "churn"}), 409, "already_exists", "'churn'"
    )


@pytest.mark.parametrize("name", ["../x", "/abs", "a\x00b", "bell\x07", "x" * 10_000, "A"])
def test_bad_names_are_a_clear_4xx(api: httpx.Client, name: str) -> None:
    response = api.post("/api/v1/models", json={"name": name})
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith(PROBLEM)
    assert api.get("/api/v1/models").json()["total"] == 0


@pytest.mark.parametrize(
    "path", ["..%2F..%2Fescape.bin", "%2Fetc%2Fpasswd", "a%2F..%2F..%2Fb", "nul%00.bin"]
)
def test_upload_paths_escaping_the_version_are_400(
    api: httpx.Client, path: str, corral_settings: Settings
) -> None:
    upload = api.post("/api/v1/uploads").json()["upload_id"]
    response = api.put(f"/api/v1/uploads/{upload}/files/{path}", content=b"evil")
    _assert_problem(response, 400, "invalid_argument", "file path")
    outside = [p for p in corral_settings.home.parent.rglob("*") if p.name in ("escape.bin", "b")]
    assert outside == []


def test_malformed_and_invalid_bodies_are_problems(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/models", content=b"{not json", headers={"content-type": "application/json"}
    )
    _assert_problem(response, 400, "invalid_argument", "not valid JSON")
    _assert_problem(api.post("/api/v1/models", json={"nme": "x"}), 422, "invalid_request", "name")
    _assert_problem(api.get("/api/v1/models?limit=0"), 400, "invalid_argument", "limit")
    _assert_problem(api.get("/api/v1/nowhere"), 404, "not_found", "/api/v1/nowhere")
    _assert_problem(api.get("/api/v1/versions?tag=novalue"), 400, "invalid_argument", "key=value")
    _assert_problem(
        api.post("/api/v1/models/churn/versions", json={"upload_id": "zz"}),
        404,
        "not_found",
        "'churn'",
    )


def test_deprecated_version_says_so_in_a_header_and_a_field(api: httpx.Client) -> None:
    api.post("/api/v1/models", json={"name": "churn"})
    _version(api, "churn")
    api.put("/api/v1/models/churn/aliases/champion", json={"version": 1})
    assert "deprecation" not in api.get("/api/v1/models/churn/versions/1").headers
    response = api.post(
        "/api/v1/models/churn/versions/1/deprecation", json={"message": "use v2 instead"}
    )
    assert response.status_code == 200
    for url in (
        "/api/v1/models/churn/versions/1",
        "/api/v1/models/churn/resolve/champion",
        "/api/v1/models/churn/versions/1/files/model.bin",
    ):
        got = api.get(url)
        assert got.status_code == 200
        assert got.headers["deprecation"].startswith("@")
        assert got.headers["corral-deprecation"] == "use v2 instead"
    body = api.get("/api/v1/models/churn/resolve/champion").json()
    assert body["deprecation"]["message"] == "use v2 instead"


def test_download_sends_the_digest(api: httpx.Client) -> None:
    api.post("/api/v1/models", json={"name": "churn"})
    version = _version(api, "churn", b"payload")
    response = api.get("/api/v1/models/churn/versions/1/files/model.bin")
    assert response.content == b"payload"
    assert response.headers["corral-sha256"] == version["files"][0]["sha256"]
    _assert_problem(
        api.get("/api/v1/models/churn/versions/1/files/other.bin"), 404, "not_found", "other.bin"
    )


def test_rollback_without_history_is_409(api: httpx.Client) -> None:
    api.post("/api/v1/models", json={"name": "churn"})
    _version(api, "churn")
    api.put("/api/v1/models/churn/aliases/champion", json={"version": 1})
    _assert_problem(
        api.post("/api/v1/models/churn/aliases/champion/rollback", json={}),
        409,
        "conflict",
        "champion",
    )


def test_openapi_lists_the_registry_routes(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    for path in (
        "/api/v1/models",
        "/api/v1/models/{name}/versions",
        "/api/v1/models/{name}/aliases/{alias}/rollback",
        "/api/v1/models/{name}/consumers/{consumer}/resolve",
        "/api/v1/uploads/{upload_id}/files/{path}",
    ):
        assert path in spec["paths"]
