"""The audit log through the SDK in every mode: each write leaves one chained event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from corral import Client
from corral.errors import AlreadyExists
from corral.registry.entities import ModelVersion
from tests.fixtures.corral import ServerThread


def _register(client: Client, tmp_path: Path, content: bytes) -> ModelVersion:
    folder = tmp_path / f"src-{content.hex()}"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(content)
    return client.register("churn", folder)


# Registry events all target a model; a server's setup (its admin, the tests' token) adds
# identity events ("user:…", "grant:…") before the test starts.
REGISTRY = "model:"


def _actions(client: Client) -> list[str]:
    return [e.action for e in reversed(client.list_audit(target=REGISTRY, limit=1000).items)]


def test_every_kind_of_write_appends_one_event_with_its_actor_and_change(
    client: Client, tmp_path: Path
) -> None:
    client.create_model("churn", description="old")
    _register(client, tmp_path, b"one")
    _register(client, tmp_path, b"two")
    client.update_model("churn", description="new")
    client.deprecate_version("churn", 1, "use version 2")
    client.undeprecate_version("churn", 1)
    client.trust_version("churn", 2, reason="reviewed")
    client.set_alias("churn", "champion", 1)
    client.set_alias("churn", "champion", 2, reason="better")
    client.rollback_alias("churn", "champion")
    client.delete_alias("churn", "champion")
    client.create_config("churn", "prod", {"workers": 2})
    client.create_consumer("billing", "churn", version=1)
    client.update_consumer("billing", "churn", version=2)
    client.delete_consumer("billing", "churn")
    client.delete_model("churn")

    assert _actions(client) == [
        "model.create",
        "version.create",
        "version.create",
        "model.update",
        "version.deprecate",
        "version.undeprecate",
        "version.trust",
        "alias.set",
        "alias.set",
        "alias.rollback",
        "alias.delete",
        "config.create",
        "consumer.create",
        "consumer.update",
        "consumer.delete",
        "model.delete",
    ]
    events = {(e.action, e.target): e for e in client.list_audit(target=REGISTRY, limit=1000).items}
    assert {e.actor for e in events.values()} == {"tester"}
    update = events["model.update", "model:churn"]
    assert (update.before, update.after) == ({"description": "old"}, {"description": "new"})
    created = events["version.create", "model:churn/version:2"]
    assert created.before is None
    assert (created.after["number"], created.after["flavor"]) == (2, "pickle")
    deprecated = events["version.deprecate", "model:churn/version:1"]
    assert deprecated.before is None
    assert deprecated.after["message"] == "use version 2"
    trusted = events["version.trust", "model:churn/version:2"]
    assert (trusted.before, trusted.after) == (
        {"trusted": False},
        {"trusted": True, "reason": "reviewed"},
    )
    moves = [e for e in client.list_audit(action="alias", limit=1000).items]
    assert [(m.action, m.before and m.before["version"]) for m in moves] == [
        ("alias.delete", 1),
        ("alias.rollback", 2),
        ("alias.set", 1),
        ("alias.set", None),
    ]
    assert moves[2].after == {
        "version": 2,
        "config": None,
        "config_revision": None,
        "reason": "better",
    }
    assert moves[0].after is None
    consumer = events["consumer.update", "model:churn/consumer:billing"]
    assert (consumer.before, consumer.after) == (
        {"version": 1, "alias": None},
        {"version": 2, "alias": None},
    )
    deleted = events["model.delete", "model:churn"]
    assert (deleted.before["description"], deleted.after) == ("new", None)

    report = client.verify_audit()
    everything = client.list_audit(limit=1000).total  # the 16 and any setup events
    assert (report.ok, report.events_checked, report.bad_event_id) == (True, everything, None)


def test_events_chain_each_to_the_one_before(client: Client, tmp_path: Path) -> None:
    client.create_model("churn")
    client.create_model("fraud")

    second, first = client.list_audit(target=REGISTRY).items
    everything = client.list_audit(limit=1000).items  # newest first
    before = everything[everything.index(first) + 1 :]

    assert first.prev_hash == (before[0].hash if before else "0" * 64)
    assert second.prev_hash == first.hash
    assert len(first.hash) == 64
    assert first.hash != second.hash


def test_the_log_filters_by_actor_action_target_and_time(client: Client, tmp_path: Path) -> None:
    client.create_model("churn")
    client.create_model("fraud")
    _register(client, tmp_path, b"one")
    client.set_alias("churn", "champion", 1)

    assert client.list_audit(actor="tester").total == 4
    assert client.list_audit(actor="test").total == 0  # the actor matches whole
    assert [e.action for e in client.list_audit(action="model.").items] == ["model.create"] * 2
    assert [e.action for e in client.list_audit(target="model:churn/").items] == [
        "alias.set",
        "version.create",
    ]
    everything = client.list_audit(target=REGISTRY)
    assert everything.total == 4
    newest = everything.items[0].at
    assert client.list_audit(since=newest + timedelta(seconds=1)).total == 0
    assert client.list_audit(until=datetime(2000, 1, 1, tzinfo=UTC)).total == 0
    assert client.list_audit(target=REGISTRY, since=datetime(2000, 1, 1, tzinfo=UTC)).total == 4
    paged = client.list_audit(target=REGISTRY, offset=1, limit=2)
    assert (paged.total, [e.id for e in paged.items]) == (4, [e.id for e in everything.items[1:3]])


def test_a_failed_write_appends_no_event(client: Client) -> None:
    client.create_model("churn")

    with pytest.raises(AlreadyExists):
        client.create_model("churn")

    assert _actions(client) == ["model.create"]
    assert client.verify_audit().ok


def test_the_rest_api_lists_and_verifies_and_records_the_callers_address(
    tmp_path: Path,
) -> None:
    from corral.config import Settings

    with (
        ServerThread(Settings(home=tmp_path / "home")) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        made = http.post(
            "/api/v1/models", json={"name": "churn"}, headers={"X-Corral-Actor": "ana"}
        )
        assert made.status_code == 201, made.text
        listed = http.get("/api/v1/audit", params={"actor": "ana", "action": "model"}).json()
        verified = http.get("/api/v1/audit/verify").json()
        bad = http.get("/api/v1/audit", params={"since": "yesterday"})

    assert listed["total"] == 1
    [event] = listed["items"]
    assert (event["actor"], event["action"], event["target"]) == (
        "ana",
        "model.create",
        "model:churn",
    )
    assert event["origin"] == "127.0.0.1"
    assert event["before"] is None
    assert event["after"]["name"] == "churn"
    assert verified == {
        "ok": True,
        "events_checked": 1,
        "bad_event_id": None,
        "problem": "",
        "detail": "",
    }
    assert bad.status_code == 422


def test_garbage_collection_is_recorded_with_its_report(client: Client) -> None:
    report = client.gc(grace_seconds=0)

    [event] = client.list_audit(action="registry.gc").items
    assert event.target == "artifacts"
    assert event.after["bytes_freed"] == report.bytes_freed
    assert event.after["grace"] == 0
    assert client.verify_audit().ok
