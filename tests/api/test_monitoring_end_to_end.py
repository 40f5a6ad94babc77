"""End to end: served traffic drifts, an objective breaches, a webhook gets the signed alert."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corral import Client
from corral.config import Settings
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import FEATURES, example_records, register_classifiers, training_data

SECRET = "a-webhook-secret-of-some-length"


class Receiver:
    """A webhook receiver on loopback that records what it is sent."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 500 if receiver.failures > 0 else 204
                receiver.failures -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[tuple[str, Client]]:
    settings = Settings(
        home=tmp_path / "home",
        route_poll_seconds=0.05,
        log_flush_seconds=0.2,
        monitor_evaluate_seconds=0,
        outbound_allow_private=True,  # the webhook receiver listens on 127.0.0.1
    )
    with Client(settings=settings, actor="tester") as client:
        register_classifiers(client, tmp_path)
        with ServerThread(settings) as server:
            yield server.url, client


def _reference_file(home: Path) -> Path:
    """A reference set under the artifact root, where the server may read it."""
    features, _ = training_data(seed=1, rows=1500)
    path = home / "artifacts" / "references" / "clf.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({name: features[:, i] for i, name in enumerate(FEATURES)}), path)
    return path


def _send(http: httpx.Client, rows: np.ndarray) -> list[str]:
    ids = []
    for start in range(0, len(rows), 50):
        reply = http.post(
            "/api/v1/models/clf/predict", json={"inputs": example_records(rows[start : start + 50])}
        )
        assert reply.status_code == 200, reply.text
        ids.append(reply.json()["request_id"])
    return ids


def _wait_for_requests(http: httpx.Client, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        status = http.get("/api/v1/models/clf/monitoring/status").json()
        if status["requests_24h"] >= count or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_injected_drift_breaches_an_objective_and_a_webhook_gets_the_signed_alert(
    monitored: tuple[str, Client], tmp_path: Path
) -> None:
    url, _ = monitored
    _reference_file(tmp_path / "home")
    with Receiver(failures=1) as receiver, httpx.Client(base_url=url, timeout=30) as http:
        spec = {
            "reference": "file:references/clf.parquet",
            "objectives": ["drift_share <= 0.3 over 1h, min 100", "error_rate <= 0.5 over 1h"],
            "webhooks": [{"url": receiver.url, "secret": SECRET}],
        }
        applied = http.put("/api/v1/models/clf/monitoring", json=spec)
        assert applied.status_code == 200, applied.text
        drift_id = next(
            o["id"] for o in applied.json()["objectives"] if o["metric"] == "drift_share"
        )

        # Traffic like the reference first: the objective holds.
        features, _ = training_data(seed=2, rows=500)
        _send(http, features)
        assert _wait_for_requests(http, 10)["requests_24h"] >= 10
        first = http.post("/api/v1/monitoring/evaluate", params={"model": "clf"}).json()
        drift_state = next(e for e in first if e["objective_id"] == drift_id)
        assert drift_state["state"] in {"ok", "at_risk"}, first
        assert drift_state["samples"] >= 100
        assert http.get("/api/v1/alerts", params={"model": "clf"}).json() == []

        # Then every feature shifts by two standard deviations.
        drifted, _ = training_data(seed=3, rows=2000)
        _send(http, drifted + 2.0)
        assert _wait_for_requests(http, 50)["requests_24h"] >= 50
        evaluations = http.post("/api/v1/monitoring/evaluate", params={"model": "clf"}).json()
        breached = next(e for e in evaluations if e["objective_id"] == drift_id)
        assert breached["state"] == "breached", evaluations
        assert breached["value"] > 0.3

        alerts = http.get("/api/v1/alerts", params={"model": "clf", "state": "open"}).json()
        assert len(alerts) == 1
        assert "drift_share" in alerts[0]["message"]

        # The receiver failed once, then got the alert; both attempts are recorded.
        assert len(receiver.calls) == 2
        headers, body = receiver.calls[-1]
        timestamp = headers["x-corral-timestamp"]
        expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        assert headers["x-corral-signature"] == f"sha256={expected.hexdigest()}"
        payload = json.loads(body)
        assert payload["event"] == "opened"
        assert payload["model"] == "clf"
        deliveries = http.get(f"/api/v1/alerts/{alerts[0]['id']}/deliveries").json()
        assert [d["succeeded"] for d in sorted(deliveries, key=lambda d: d["attempt"])] == [
            False,
            True,
        ]

        # Evaluating again while still breached opens no second alert and sends nothing new.
        http.post("/api/v1/monitoring/evaluate", params={"model": "clf"})
        assert len(http.get("/api/v1/alerts", params={"model": "clf"}).json()) == 1
        assert len(receiver.calls) == 2
