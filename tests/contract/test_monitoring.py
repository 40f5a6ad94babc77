"""The SDK's monitoring verbs answer the same JSON locally and over REST.

A local client and a remote one share one Corral home (SQLite + a local folder), so what
one writes the other reads, and every answer can be compared whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from corral import Client
from corral.config import Settings
from corral.errors import InvalidArgument, NotFound
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import register_classifiers

SECRET = "0123456789abcdef-secret"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Client]]:
    """(local, remote) on the same home, with model 'clf' of two versions."""
    tmp = tmp_path_factory.mktemp("monitoring-contract")
    settings = Settings(home=tmp / "home", monitor_evaluate_seconds=0, outbound_allow_private=True)
    with Client(settings=settings, actor="tester") as local:
        register_classifiers(local, tmp)
        with (
            ServerThread(settings) as server,
            Client(server.url, actor="tester", cache_dir=tmp / "cache") as remote,
        ):
            yield local, remote


def _json_clean(value: Any) -> Any:
    """The value after a JSON round trip: what a script would store and compare."""
    return json.loads(json.dumps(value))


def _same(local: Any, remote: Any) -> Any:
    assert local == remote
    assert _json_clean(local) == local  # plain JSON values: nothing to convert
    return local


def test_objectives_evaluations_and_history_are_the_same_both_ways(
    pair: tuple[Client, Client],
) -> None:
    local, remote = pair
    made = local.add_objective("clf", "requests >= 1 over 1h")
    other = remote.add_objective("clf", "p95_latency_ms <= 50 over 1d, min 10", version=2)
    assert made["expression"] == "requests >= 1 over 1h"
    assert other["version"] == 2
    assert set(made) == set(other)
    listed = _same(local.list_objectives("clf"), remote.list_objectives("clf"))
    assert {o["id"] for o in listed} >= {made["id"], other["id"]}

    evaluated = remote.evaluate("clf")
    assert {e["objective_id"] for e in evaluated} >= {made["id"], other["id"]}
    assert set(evaluated[0]) == set(local.evaluate("clf")[0])
    history = _same(
        local.objective_history("clf", made["id"]), remote.objective_history("clf", made["id"])
    )
    assert len(history) == 2
    assert history[0]["state"] == history[1]["state"]
    assert history[0]["at"] >= history[1]["at"]  # newest first
    _same(local.monitoring_status("clf"), remote.monitoring_status("clf"))

    local.delete_objective("clf", made["id"])
    remote.delete_objective("clf", other["id"])
    assert local.list_objectives("clf") == remote.list_objectives("clf") == []


def test_apply_replaces_objectives_the_same_both_ways(pair: tuple[Client, Client]) -> None:
    local, remote = pair
    spec = {"objectives": ["accuracy >= 0.9 over 2d, min 500"], "reference": "example"}
    from_local = local.apply_monitoring("clf", spec)
    from_remote = remote.apply_monitoring("clf", spec)
    assert set(from_local) == set(from_remote)
    assert [o["expression"] for o in from_remote["objectives"]] == spec["objectives"]
    _same(local.list_objectives("clf"), remote.list_objectives("clf"))
    local.apply_monitoring("clf", {"objectives": []})


def test_performance_and_drift_reports_are_the_same_both_ways(
    pair: tuple[Client, Client],
) -> None:
    local, remote = pair
    until = datetime.now(UTC).replace(microsecond=0)
    since = until - timedelta(hours=3)
    report = _same(
        local.performance("clf", since=since, until=until, bucket="1h"),
        remote.performance("clf", since=since, until=until, bucket="1h"),
    )
    assert report["bucket_seconds"] == 3600
    assert len(report["buckets"]) >= 3
    assert all(b["requests"] == 0 for b in report["buckets"])
    naive = {"since": since.replace(tzinfo=None), "until": until.replace(tzinfo=None)}
    assert local.performance("clf", **naive) == remote.performance("clf", **naive) == report

    drift = _same(
        local.drift("clf", reference="example", window="1h"),
        remote.drift("clf", reference="example", window="1h"),
    )
    assert drift["current_rows"] == 0
    assert drift["reference_rows"] == 3


def test_feedback_receipts_are_the_same_both_ways(
    pair: tuple[Client, Client], tmp_path: Path
) -> None:
    local, remote = pair
    records = [{"request_id": "never-1", "label": 1}, {"request_id": "never-2", "label": 0}]
    receipt = _same(local.send_feedback("clf", records), remote.send_feedback("clf", records))
    assert receipt == {
        "received": 2,
        "matched": 0,
        "unknown": 2,
        "unknown_ids": ["never-1", "never-2"],
    }
    one = _same(local.send_feedback("clf", records[0]), remote.send_feedback("clf", records[0]))
    assert one["received"] == 1

    csv = tmp_path / "labels.csv"
    csv.write_text("request_id,label\nnever-3,1\n", encoding="utf-8")
    lines = tmp_path / "labels.jsonl"
    lines.write_text('{"request_id": "never-3", "label": 1}\n', encoding="utf-8")
    plain = tmp_path / "labels.json"
    plain.write_text('[{"request_id": "never-3", "label": 1}]', encoding="utf-8")
    for file in (csv, lines, plain):
        got = _same(local.upload_feedback("clf", file), remote.upload_feedback("clf", file))
        assert got["unknown_ids"] == ["never-3"]


def test_webhooks_alerts_and_deliveries_are_the_same_both_ways(
    pair: tuple[Client, Client],
) -> None:
    local, remote = pair
    hook = local.add_webhook("http://127.0.0.1:9/never", SECRET, model="clf")
    other = remote.add_webhook("http://127.0.0.1:9/all", SECRET)
    assert set(hook) == set(other)
    assert "secret" not in hook
    hooks = _same(local.list_webhooks(), remote.list_webhooks())
    assert {h["id"] for h in hooks} >= {hook["id"], other["id"]}
    _same(local.list_alerts(model="clf"), remote.list_alerts(model="clf"))
    _same(local.list_alerts(state="open"), remote.list_alerts(state="open"))
    _same(local.list_deliveries(), remote.list_deliveries())
    local.delete_webhook(other["id"])
    remote.delete_webhook(hook["id"])
    assert local.list_webhooks() == remote.list_webhooks() == []


def test_errors_are_the_same_classes_both_ways(pair: tuple[Client, Client]) -> None:
    for client in pair:
        with pytest.raises(NotFound, match="ghost"):
            client.monitoring_status("ghost")
        with pytest.raises(NotFound, match="ghost"):
            client.send_feedback("ghost", {"request_id": "r", "label": 1})
        with pytest.raises(InvalidArgument, match="acuracy"):
            client.add_objective("clf", "acuracy >= 0.9 over 7d")
        with pytest.raises(InvalidArgument, match="item 0"):
            client.send_feedback("clf", [{"request_id": "r"}])
        with pytest.raises(InvalidArgument, match="alerts"):
            client.apply_monitoring("clf", {"alerts": []})
        with pytest.raises(InvalidArgument, match=r"\.xlsx"):
            client.upload_feedback("clf", "labels.xlsx")
        with pytest.raises(NotFound):
            client.delete_webhook(987654)
