"""The monitoring REST surface through a real server: every route, and its problem+json errors."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral import Client
from corral.config import Settings
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import example_records, register_classifiers, training_data
from tests.fixtures.webhooks import Receiver

PROBLEM = "application/problem+json"
SECRET = "s3cret-s3cret-s3cret"
MODEL = "/api/v1/models/clf"


@dataclass
class Monitored:
    """A server whose model 'clf' answered logged requests: their ids and true labels."""

    http: httpx.Client
    request_ids: list[str]
    labels: list[list[int]]  # per request, per row


def _wait_for_requests(http: httpx.Client, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = http.get(f"{MODEL}/monitoring/status").json()
        if status["requests_24h"] >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"the prediction log never showed {count} requests: {status}")


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[Monitored]:
    settings = Settings(
        home=tmp_path / "home",
        log_flush_seconds=0.1,
        monitor_evaluate_seconds=0,
        outbound_allow_private=True,  # webhook receivers listen on 127.0.0.1
    )
    with Client(settings=settings, actor="tester") as client:
        register_classifiers(client, tmp_path)
    features, labels = training_data(seed=3, rows=30)
    with ServerThread(settings) as server, httpx.Client(base_url=server.url) as http:
        ids, truth = [], []
        for start in range(0, 30, 10):
            rows = example_records(features[start : start + 10])
            answer = http.post(f"{MODEL}/predict", json={"inputs": rows})
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["request_id"])
            truth.append([int(v) for v in labels[start : start + 10]])
        _wait_for_requests(http, 3)
        yield Monitored(http, ids, truth)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[httpx.Client]:
    """A server with model 'clf' and no traffic (monitoring needs none for these routes)."""
    settings = Settings(
        home=tmp_path / "home", monitor_evaluate_seconds=0, outbound_allow_private=True
    )
    with Client(settings=settings, actor="tester") as client:
        register_classifiers(client, tmp_path)
    with ServerThread(settings) as server, httpx.Client(base_url=server.url) as http:
        yield http


def _assert_problem(response: httpx.Response, status: int, code: str, *names: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert (body["status"], body["code"]) == (status, code)
    for name in names:
        assert name in body["detail"], body["detail"]


def _feedback(monitored: Monitored, request: int) -> list[dict[str, Any]]:
    rid = monitored.request_ids[request]
    return [
        {"request_id": rid, "row": row, "label": label}
        for row, label in enumerate(monitored.labels[request])
    ]


# -- traffic, performance, feedback ----------------------------------------------------------


def test_status_and_performance_show_logged_traffic_then_accuracy_after_feedback(
    monitored: Monitored,
) -> None:
    http = monitored.http
    status = http.get(f"{MODEL}/monitoring/status").json()
    assert status["model"] == "clf"
    assert status["requests_24h"] == 3
    assert status["p95_latency_ms_24h"] > 0
    assert (status["objectives"], status["open_alerts"]) == ([], 0)

    receipt = http.post(f"{MODEL}/feedback", json=_feedback(monitored, 0))
    assert receipt.status_code == 200, receipt.text
    assert receipt.json() == {"received": 10, "matched": 10, "unknown": 0, "unknown_ids": []}

    report = http.get(f"{MODEL}/monitoring/performance", params={"bucket": "1d"}).json()
    assert report["bucket_seconds"] == 86400
    busy = [b for b in report["buckets"] if b["requests"]]
    assert len(busy) == 1
    (bucket,) = busy
    assert (bucket["requests"], bucket["rows"], bucket["labelled"]) == (3, 30, 10)
    assert bucket["task"] == "classification"
    assert bucket["accuracy"] >= 0.8  # a logistic regression on a linear rule
    assert {"estimated_accuracy", "roc_auc", "p99_latency_ms"} <= bucket.keys()

    day = datetime.fromisoformat(bucket["start"]).astimezone(UTC).date()
    naive = {"since": f"{day}T00:00:00", "until": f"{day + timedelta(days=1)}T00:00:00"}
    same = http.get(f"{MODEL}/monitoring/performance", params={**naive, "bucket": "1d"}).json()
    assert [b["requests"] for b in same["buckets"]] == [3]  # a time without a zone is UTC

    by_version = http.get(f"{MODEL}/monitoring/performance", params={"version": 2}).json()
    assert sum(b["requests"] for b in by_version["buckets"]) == 0  # the champion is version 1


def test_feedback_is_taken_as_csv_json_lines_and_parquet_and_unknown_ids_are_counted(
    monitored: Monitored,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    http = monitored.http
    rid = monitored.request_ids
    csv = f"request_id,label,row\n{rid[0]},1,0\n{rid[0]},0,1\nnever-served,1,0\n"
    done = http.post(f"{MODEL}/feedback", content=csv, headers={"Content-Type": "text/csv"})
    assert done.status_code == 200, done.text
    assert done.json() == {
        "received": 3,
        "matched": 2,
        "unknown": 1,
        "unknown_ids": ["never-served"],
    }

    lines = "\n".join(json.dumps(r) for r in _feedback(monitored, 1)) + "\n"
    for content_type in ("application/x-ndjson", "application/jsonl"):
        done = http.post(f"{MODEL}/feedback", content=lines, headers={"Content-Type": content_type})
        assert done.json()["matched"] == 10

    sink = io.BytesIO()
    pq.write_table(pa.table({"request_id": [rid[2], "ghost-1"], "label": ["1", "0"]}), sink)
    for headers, params in (
        ({"Content-Type": "application/vnd.apache.parquet"}, {}),
        ({"Content-Type": "application/octet-stream"}, {"format": "parquet"}),
    ):
        done = http.post(
            f"{MODEL}/feedback", content=sink.getvalue(), headers=headers, params=params
        )
        assert done.status_code == 200, done.text
        assert (done.json()["matched"], done.json()["unknown_ids"]) == (1, ["ghost-1"])

    one = http.post(f"{MODEL}/feedback", json={"request_id": rid[1], "label": 1, "row": 3})
    assert one.json()["matched"] == 1


def test_malformed_feedback_is_422_naming_the_line_or_item(api: httpx.Client) -> None:
    csv = "request_id,label\nr-1,1\nr-2\n"
    _assert_problem(
        api.post(f"{MODEL}/feedback", content=csv, headers={"Content-Type": "text/csv"}),
        422,
        "invalid_request",
        "line 3",
    )
    lines = '{"request_id": "r-1", "label": 1}\n{"request_id": "r-2", "label": \n'
    _assert_problem(
        api.post(
            f"{MODEL}/feedback", content=lines, headers={"Content-Type": "application/x-ndjson"}
        ),
        422,
        "invalid_request",
        "line 2",
    )
    items = [{"request_id": "r-1", "label": 1}, {"request_id": "r-2"}]
    _assert_problem(
        api.post(f"{MODEL}/feedback", json=items), 422, "invalid_request", "item 1", "label"
    )
    _assert_problem(api.post(f"{MODEL}/feedback", json=[1, 2]), 422, "invalid_request", "item 0")
    _assert_problem(api.post(f"{MODEL}/feedback", json="labels"), 422, "invalid_request")
    _assert_problem(
        api.post(f"{MODEL}/feedback", content=b"{", headers={"Content-Type": "application/json"}),
        400,
        "invalid_argument",
        "not valid JSON",
    )
    _assert_problem(
        api.post(f"{MODEL}/feedback", content=b"x", headers={"Content-Type": "image/png"}),
        400,
        "invalid_argument",
        "image/png",
    )
    _assert_problem(
        api.post(
            f"{MODEL}/feedback",
            content=b"x",
            headers={"Content-Type": "application/octet-stream"},
            params={"format": "xlsx"},
        ),
        400,
        "invalid_argument",
        "xlsx",
    )


def test_drift_compares_logged_inputs_with_the_versions_example(monitored: Monitored) -> None:
    report = monitored.http.get(
        f"{MODEL}/monitoring/drift", params={"reference": "example", "window": "1h"}
    )
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["current_rows"] == 30
    assert body["reference_rows"] == 3
    assert {c["name"] for c in body["columns"]} >= {"f0", "f19"}
    assert 0.0 <= body["drifted_share"] <= 1.0
    _assert_problem(
        monitored.http.get(f"{MODEL}/monitoring/drift", params={"reference": "yesterday"}),
        400,
        "invalid_argument",
        "yesterday",
    )
    _assert_problem(
        monitored.http.get(f"{MODEL}/monitoring/drift", params={"window": "forever"}),
        400,
        "invalid_argument",
        "forever",
    )


# -- objectives ------------------------------------------------------------------------------


def test_objectives_are_created_listed_evaluated_and_deleted(monitored: Monitored) -> None:
    http = monitored.http
    created = http.post(
        f"{MODEL}/objectives",
        json={"objective": "requests >= 2 over 1h"},
        headers={"X-Corral-Actor": "ana"},
    )
    assert created.status_code == 201, created.text
    objective = created.json()
    assert objective["expression"] == "requests >= 2 over 1h"
    assert (objective["metric"], objective["created_by"]) == ("requests", "ana")

    listed = http.get(f"{MODEL}/objectives").json()
    assert [(o["id"], o["state"]) for o in listed] == [(objective["id"], "no_data")]

    evaluations = http.post("/api/v1/monitoring/evaluate", params={"model": "clf"}).json()
    assert [(e["objective_id"], e["state"], e["value"]) for e in evaluations] == [
        (objective["id"], "ok", 3.0)
    ]
    history = http.get(f"{MODEL}/objectives/{objective['id']}/history").json()
    assert [(e["state"], e["samples"]) for e in history] == [("ok", 3)]
    assert http.get(f"{MODEL}/objectives").json()[0]["state"] == "ok"

    assert http.delete(f"{MODEL}/objectives/{objective['id']}").status_code == 204
    assert http.get(f"{MODEL}/objectives").json() == []
    _assert_problem(
        http.delete(f"{MODEL}/objectives/{objective['id']}"),
        404,
        "not_found",
        f"objective {objective['id']}",
    )


def test_bad_objectives_are_422_naming_the_part(api: httpx.Client) -> None:
    _assert_problem(
        api.post(f"{MODEL}/objectives", json={"objective": "acuracy >= 0.9 over 7d"}),
        422,
        "invalid_request",
        "acuracy",
        "accuracy",
    )
    _assert_problem(
        api.post(f"{MODEL}/objectives", json={"objective": "accuracy >= 0.9 over forever"}),
        422,
        "invalid_request",
        "forever",
    )
    _assert_problem(
        api.post(f"{MODEL}/objectives", json={"objective": "accuracy >= 0.9", "extra": 1}),
        422,
        "invalid_request",
        "extra",
    )
    _assert_problem(
        api.post(
            f"{MODEL}/objectives", json={"objective": "accuracy >= 0.9 over 7d", "version": 9}
        ),
        404,
        "not_found",
        "9",
    )
    assert api.get(f"{MODEL}/objectives").json() == []


def test_applying_a_spec_replaces_the_objectives_and_a_bad_spec_changes_nothing(
    api: httpx.Client,
) -> None:
    api.post(f"{MODEL}/objectives", json={"objective": "requests >= 1 over 1d"})
    spec = {
        "objectives": ["accuracy >= 0.9 over 2d, min 500", "p95_latency_ms <= 50 over 1h"],
        "drift": {"share_threshold": 0.4},
        "reference": "example",
    }
    applied = api.put(f"{MODEL}/monitoring", json=spec)
    assert applied.status_code == 200, applied.text
    expressions = [o["expression"] for o in applied.json()["objectives"]]
    assert expressions == spec["objectives"]
    listed = [o["expression"] for o in api.get(f"{MODEL}/objectives").json()]
    assert listed == expressions

    _assert_problem(
        api.put(f"{MODEL}/monitoring", json={"objectives": [], "alerts": []}),
        422,
        "invalid_request",
        "alerts",
    )
    _assert_problem(
        api.put(f"{MODEL}/monitoring", json={"objectives": ["f1 >= 2 over 1d"]}),
        422,
        "invalid_request",
        "objectives[0]",
    )
    assert [o["expression"] for o in api.get(f"{MODEL}/objectives").json()] == expressions


# -- alerts and webhooks ---------------------------------------------------------------------


def test_a_breach_opens_an_alert_delivered_to_a_webhook_and_recorded(
    monitored: Monitored, receiver: Receiver
) -> None:
    http = monitored.http
    hook = http.post(
        "/api/v1/webhooks", json={"url": receiver.url, "secret": SECRET, "model": "clf"}
    )
    assert hook.status_code == 201, hook.text
    webhook = hook.json()
    assert webhook["has_secret"] is True
    assert "secret" not in webhook
    assert [w["id"] for w in http.get("/api/v1/webhooks").json()] == [webhook["id"]]

    http.post(f"{MODEL}/objectives", json={"objective": "requests >= 1000 over 1h"})
    (evaluation,) = http.post("/api/v1/monitoring/evaluate").json()
    assert evaluation["state"] == "breached"

    (alert,) = http.get("/api/v1/alerts", params={"model": "clf", "state": "open"}).json()
    assert alert["objective_id"] == evaluation["objective_id"]
    assert http.get("/api/v1/alerts", params={"state": "closed"}).json() == []
    assert http.get(f"{MODEL}/monitoring/status").json()["open_alerts"] == 1

    deliveries = http.get(f"/api/v1/alerts/{alert['id']}/deliveries").json()
    assert [(d["event"], d["succeeded"]) for d in deliveries] == [("opened", True)]
    everything = http.get("/api/v1/webhooks/deliveries").json()
    assert [d["id"] for d in everything] == [d["id"] for d in deliveries]
    filtered = http.get("/api/v1/webhooks/deliveries", params={"alert_id": alert["id"]}).json()
    assert filtered == deliveries

    (headers, body), *_ = receiver.received
    assert json.loads(body)["alert"]["id"] == alert["id"]
    signed = headers["x-corral-timestamp"].encode() + b"." + body
    digest = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert headers["x-corral-signature"] == f"sha256={digest}"

    assert http.delete(f"/api/v1/webhooks/{webhook['id']}").status_code == 204
    assert http.get("/api/v1/webhooks").json() == []
    _assert_problem(http.delete(f"/api/v1/webhooks/{webhook['id']}"), 404, "not_found")


def test_bad_webhooks_and_alert_filters_are_refused_naming_them(api: httpx.Client) -> None:
    _assert_problem(
        api.post("/api/v1/webhooks", json={"url": "ftp://x", "secret": SECRET}),
        400,
        "invalid_argument",
        "ftp://x",
    )
    _assert_problem(
        api.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "secret": "short"}),
        400,
        "invalid_argument",
        "16",
    )
    _assert_problem(
        api.post(
            "/api/v1/webhooks",
            json={"url": "http://127.0.0.1:9/", "model": "ghost", "secret": SECRET},
        ),
        404,
        "not_found",
        "ghost",
    )
    _assert_problem(
        api.get("/api/v1/alerts", params={"state": "gone"}), 400, "invalid_argument", "gone"
    )
    _assert_problem(api.get("/api/v1/alerts/99/deliveries"), 404, "not_found", "99")


def test_an_unknown_model_is_404_naming_it_on_every_model_route(api: httpx.Client) -> None:
    routes: list[tuple[str, str, Any]] = [
        ("GET", "/monitoring/status", None),
        ("GET", "/monitoring/performance", None),
        ("GET", "/monitoring/drift", None),
        ("GET", "/objectives", None),
        ("POST", "/objectives", {"objective": "requests >= 1 over 1h"}),
        ("DELETE", "/objectives/1", None),
        ("GET", "/objectives/1/history", None),
        ("PUT", "/monitoring", {"objectives": []}),
        ("POST", "/feedback", {"request_id": "r", "label": 1}),
    ]
    for method, path, body in routes:
        response = api.request(method, f"/api/v1/models/ghost{path}", json=body)
        _assert_problem(response, 404, "not_found", "ghost")
    csv = {"Content-Type": "text/csv"}
    response = api.post(
        "/api/v1/models/ghost/feedback", content="request_id,label\nr,1\n", headers=csv
    )
    _assert_problem(response, 404, "not_found", "ghost")


def test_evaluate_and_alerts_of_an_unknown_model_are_404(api: httpx.Client) -> None:
    _assert_problem(
        api.post("/api/v1/monitoring/evaluate", params={"model": "ghost"}),
        404,
        "not_found",
        "ghost",
    )
    _assert_problem(api.get("/api/v1/alerts", params={"model": "ghost"}), 404, "not_found", "ghost")
