"""Trusting a version to run its code, through the SDK in every mode, and its REST shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral import Client
from corral.errors import InvalidArgument, NotFound
from corral.registry.entities import ModelVersion
from tests.fixtures.corral import ServerThread


def _register(client: Client, tmp_path: Path, content: bytes, **kw: object) -> ModelVersion:
    folder = tmp_path / f"src-{content.hex()}"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(content)
    return client.register("churn", folder, **kw)  # type: ignore[arg-type]


def test_a_registered_version_is_untrusted_until_trusted(client: Client, tmp_path: Path) -> None:
    created = _register(client, tmp_path, b"pickled")
    assert created.flavor == "pickle"
    assert created.trusted is False
    assert client.trust_history("churn", 1) == []

    trusted = client.trust_version("churn", 1, reason="reviewed the training code")

    assert (trusted.number, trusted.trusted) == (1, True)
    assert client.get_version("churn", 1).trusted is True
    assert [v.trusted for v in client.list_versions("churn").items] == [True]
    [event] = client.trust_history("churn", 1)
    assert (event.model, event.version, event.trusted) == ("churn", 1, True)
    assert (event.actor, event.reason) == ("tester", "reviewed the training code")
    assert event.at is not None


def test_untrusting_needs_no_reason_and_history_is_newest_first(
    client: Client, tmp_path: Path
) -> None:
    _register(client, tmp_path, b"pickled")
    client.trust_version("churn", 1, reason="first review")
    client.trust_version("churn", 1, reason="second review")  # the same value again: recorded

    untrusted = client.trust_version("churn", 1, trusted=False)

    assert untrusted.trusted is False
    assert client.get_version("churn", 1).trusted is False
    history = client.trust_history("churn", 1)
    assert [(e.trusted, e.reason) for e in history] == [
        (False, ""),
        (True, "second review"),
        (True, "first review"),
    ]
    assert {e.actor for e in history} == {"tester"}


@pytest.mark.parametrize("reason", ["", "   "])
def test_trusting_without_a_reason_is_refused_and_not_recorded(
    client: Client, tmp_path: Path, reason: str
) -> None:
    _register(client, tmp_path, b"pickled")

    with pytest.raises(InvalidArgument, match="give a reason"):
        client.trust_version("churn", 1, reason=reason)

    assert client.get_version("churn", 1).trusted is False
    assert client.trust_history("churn", 1) == []


def test_trust_through_an_alias_marks_the_version_it_points_at(
    client: Client, tmp_path: Path
) -> None:
    _register(client, tmp_path, b"one")
    _register(client, tmp_path, b"two", alias="champion")

    client.trust_version("churn", "champion", reason="reviewed")

    assert client.get_version("churn", 2).trusted is True
    assert client.get_version("churn", 1).trusted is False
    assert [e.version for e in client.trust_history("churn", "champion")] == [2]
    assert client.trust_history("churn", 1) == []


def test_trusting_a_missing_version_names_it(client: Client, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="model 'churn' does not exist"):
        client.trust_version("churn", 1, reason="reviewed")
    _register(client, tmp_path, b"pickled")
    with pytest.raises(NotFound, match="model 'churn' has no version 9"):
        client.trust_version("churn", 9, reason="reviewed")
    with pytest.raises(NotFound, match="model 'churn' has no version 9"):
        client.trust_history("churn", 9)


# --- the REST shape ---------------------------------------------------------------------


@pytest.fixture
def api(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/api/v1/models", json={"name": "churn"}).status_code == 201
        upload = http.post("/api/v1/uploads").json()["upload_id"]
        http.put(f"/api/v1/uploads/{upload}/files/model.pkl", content=b"pickled")
        created = http.post("/api/v1/models/churn/versions", json={"upload_id": upload})
        assert created.status_code == 201, created.text
        assert created.json()["trusted"] is False
        yield http


def test_put_trust_records_the_actor_header_and_get_returns_flag_and_history(
    api: httpx.Client,
) -> None:
    url = "/api/v1/models/churn/versions/1/trust"
    assert api.get(url).json() == {"trusted": False, "history": []}

    put = api.put(
        url, json={"trusted": True, "reason": "reviewed"}, headers={"X-Corral-Actor": "ana"}
    )
    api.put(url, json={"trusted": False})

    assert put.status_code == 200, put.text
    assert (put.json()["number"], put.json()["trusted"]) == (1, True)
    body = api.get(url).json()
    assert body["trusted"] is False
    assert [(e["trusted"], e["actor"], e["reason"]) for e in body["history"]] == [
        (False, "anonymous", ""),
        (True, "ana", "reviewed"),
    ]
    assert set(body["history"][0]) == {"id", "model", "version", "trusted", "actor", "reason", "at"}


def test_put_trust_errors_are_problems(api: httpx.Client) -> None:
    url = "/api/v1/models/churn/versions/1/trust"

    no_reason = api.put(url, json={"trusted": True})
    no_flag = api.put(url, json={"reason": "reviewed"})
    missing = api.put("/api/v1/models/churn/versions/5/trust", json={"trusted": False})

    assert (no_reason.status_code, no_reason.json()["code"]) == (400, "invalid_argument")
    assert no_reason.headers["content-type"].startswith("application/problem+json")
    assert (no_flag.status_code, no_flag.json()["code"]) == (422, "invalid_request")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert api.get(url).json() == {"trusted": False, "history": []}
