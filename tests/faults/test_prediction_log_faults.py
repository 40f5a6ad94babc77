"""The prediction log under faults: a killed server, an unavailable store, a full queue."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from corral import Client
from corral.config import Settings
from tests.faults._corral import ServerProcess, corral_env
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import example_records, register_classifiers, training_data

FLUSH_SECONDS = 0.5


def logged_ids(artifacts: Path) -> list[str]:
    files = sorted((artifacts / "monitoring" / "predictions").glob("model=clf/date=*/*.parquet"))
    if not files:
        return []
    table = pa.concat_tables(
        [pq.read_table(f, columns=["request_id"], partitioning=None) for f in files]
    )
    return [str(v) for v in table.column("request_id").to_pylist()]


def log_metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def prepared_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    with Client(home=home, actor="tester") as client:
        register_classifiers(client, tmp_path)
    return home


def test_a_killed_server_loses_at_most_the_last_flush_intervals(tmp_path: Path) -> None:
    home = prepared_home(tmp_path)
    env = corral_env(tmp_path, CORRAL_LOG_FLUSH_SECONDS=str(FLUSH_SECONDS))
    features, _ = training_data()
    body = {"inputs": example_records(features[:1])}
    sent: list[tuple[float, str]] = []
    with (
        ServerProcess(home, tmp_path, env) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        warm = http.post(  # loads the model
            "/api/v1/models/clf/predict", json=body, headers={"X-Request-Id": "warm-up"}
        )
        assert warm.status_code == 200
        sent.append((time.monotonic(), "warm-up"))
        started = time.monotonic()
        while time.monotonic() - started < 4 * FLUSH_SECONDS + 1:
            request_id = f"req-{len(sent):05d}"
            reply = http.post(
                "/api/v1/models/clf/predict", json=body, headers={"X-Request-Id": request_id}
            )
            assert reply.status_code == 200
            sent.append((time.monotonic(), request_id))
        os.kill(server.pid, signal.SIGKILL)
        killed = time.monotonic()
        assert server.proc is not None
        server.proc.wait(timeout=20)
    on_disk = set(logged_ids(home / "artifacts"))
    old = [rid for at, rid in sent if at < killed - 2 * FLUSH_SECONDS]
    assert old, "no request was sent long enough before the kill"
    missing = [rid for rid in old if rid not in on_disk]
    assert not missing, f"{len(missing)} rows older than two flush intervals were lost"
    assert on_disk <= {rid for _, rid in sent}


def test_the_log_buffers_while_the_store_is_unavailable_then_drops_over_its_bound(
    tmp_path: Path,
) -> None:
    settings = Settings(
        home=tmp_path / "home", route_poll_seconds=0.05, log_flush_seconds=0.1, log_queue_rows=50
    )
    with Client(settings=settings, actor="tester") as client:
        register_classifiers(client, tmp_path)
    artifacts = settings.home / "artifacts"
    blocker = artifacts / "monitoring" / "predictions"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the log's folder should be: every write fails")
    features, _ = training_data()
    body = {"inputs": example_records(features[:2])}

    def metrics(http: httpx.Client) -> str:
        return http.get("/metrics").text

    with ServerThread(settings) as server, httpx.Client(base_url=server.url) as http:
        for _ in range(10):
            assert http.post("/api/v1/models/clf/predict", json=body).status_code == 200
        deadline = time.monotonic() + 20
        # The flush thread updates the counters, then the gauge: wait for both.
        while (
            log_metric(metrics(http), 'corral_prediction_log_rows_total{outcome="failed_flush"}')
            < 20
            or log_metric(metrics(http), "corral_prediction_log_queue_rows") != 20
        ):
            assert time.monotonic() < deadline, "the failed writes were not counted and held"
            time.sleep(0.05)
        assert log_metric(metrics(http), "corral_prediction_log_queue_rows") == 20
        for _ in range(30):  # 60 more rows: 30 fit under the bound of 50, 30 are dropped
            assert http.post("/api/v1/models/clf/predict", json=body).status_code == 200
        blocker.unlink()  # the store is back
        deadline = time.monotonic() + 20
        while log_metric(metrics(http), 'corral_prediction_log_rows_total{outcome="written"}') < 50:
            assert time.monotonic() < deadline, "the log did not resume writing"
            time.sleep(0.05)
        text = metrics(http)
    assert log_metric(text, 'corral_prediction_log_rows_total{outcome="dropped"}') == 30
    assert log_metric(text, "corral_prediction_log_queue_rows") == 0
    assert len(logged_ids(artifacts)) == 50


def test_sigterm_to_a_multi_worker_server_writes_every_queued_row(tmp_path: Path) -> None:
    home = prepared_home(tmp_path)
    env = corral_env(tmp_path, CORRAL_LOG_FLUSH_SECONDS="600")  # only the stop writes
    features, _ = training_data()
    body = {"inputs": example_records(features[:3])}
    with ServerProcess(home, tmp_path, env, args=["--workers", "2"]) as server:
        for _ in range(40):  # new connections: the kernel spreads them over both workers
            # A worker's first request loads the model: allow for a busy machine.
            reply = httpx.post(f"{server.url}/api/v1/models/clf/predict", json=body, timeout=60)
            assert reply.status_code == 200
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=60)
    assert len(logged_ids(home / "artifacts")) == 40 * 3
