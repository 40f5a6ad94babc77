"""Reference ranges on a real server: flagged in replies, the log and metrics, or refused."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corral import Client
from corral.config import Settings
from corral.store.metrics._layout import LogFiles
from corral.store.metrics._queries import open_window
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import example_records, save_classifier, training_data

PREDICT = "/api/v1/models/clf/predict"
INFER = "/v2/models/clf/infer"


@dataclass
class Ranged:
    settings: Settings
    client: Client
    http: httpx.Client
    features: np.ndarray

    def log_rows(self, request_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The log rows of one request, once the recorder has flushed them."""
        folder = self.settings.home / "artifacts" / "monitoring" / "predictions" / "model=clf"
        deadline = time.monotonic() + timeout
        while True:
            files = sorted(folder.glob("date=*/*.parquet"))
            if files:
                table = pa.concat_tables(
                    [pq.read_table(f, partitioning=None) for f in files],
                    promote_options="default",
                )
                rows = [r for r in table.to_pylist() if r["request_id"] == request_id]
                if rows:
                    return sorted(rows, key=lambda r: r["row"])
            if time.monotonic() > deadline:
                raise AssertionError(f"request {request_id} never reached the prediction log")
            time.sleep(0.05)

    def metric(self, name: str, **labels: str) -> float:
        text = self.http.get("/metrics").text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0


@pytest.fixture
def ranged(tmp_path: Path) -> Iterator[Ranged]:
    """'clf' version 1 registered with its whole training set as example, as champion."""
    settings = Settings(home=tmp_path / "home", route_poll_seconds=0.05, log_flush_seconds=0.2)
    features, _ = training_data()
    with Client(settings=settings, actor="tester") as client:
        save_classifier(tmp_path / "v1")
        client.register("clf", tmp_path / "v1", flavor="sklearn", example=example_records(features))
        client.set_alias("clf", "champion", 1, reason="first")
        with ServerThread(settings) as server, httpx.Client(base_url=server.url) as http:
            yield Ranged(settings, client, http, features)


def _tainted(features: np.ndarray) -> np.ndarray:
    """Three training rows, the second with f3 far outside anything trained on."""
    rows = features[:3].copy()
    rows[1, 3] = 50.0
    return rows


def _tensor(rows: np.ndarray) -> dict[str, Any]:
    return {
        "name": "input-0",
        "shape": list(rows.shape),
        "datatype": "FP64",
        "data": rows.ravel().tolist(),
    }


def test_in_range_requests_carry_no_flag(ranged: Ranged) -> None:
    plain = ranged.http.post(PREDICT, json={"inputs": example_records(ranged.features[:5])})
    assert plain.status_code == 200
    assert "out_of_range" not in plain.json()
    assert plain.headers["x-corral-out-of-range"] == "0"  # checked, and nothing was out
    oip = ranged.http.post(INFER, json={"inputs": [_tensor(ranged.features[:5])]})
    assert oip.status_code == 200
    assert oip.json()["parameters"]["out_of_range_rows"] == 0
    assert "out_of_range" not in oip.json()["parameters"]
    (row, *_) = ranged.log_rows(plain.headers["x-request-id"])
    assert row["out_of_range"] is False
    assert (
        ranged.metric("corral_out_of_range_rows_total", model="clf", version="1", column="f3") == 0
    )
    metadata = ranged.http.get(INFER.removesuffix("/infer")).json()
    assert metadata["parameters"]["input_checks"].startswith("flag: ")


def test_out_of_range_rows_are_flagged_in_replies_log_and_metrics(ranged: Ranged) -> None:
    rows = _tainted(ranged.features)
    plain = ranged.http.post(PREDICT, json={"inputs": example_records(rows)})
    assert plain.status_code == 200
    body = plain.json()
    assert len(body["predictions"]) == 3  # flagged, still answered
    assert body["out_of_range"] == {"rows": [1], "columns": {"f3": [1]}}
    assert plain.headers["x-corral-out-of-range"] == "1"

    oip = ranged.http.post(INFER, json={"id": "oip-1", "inputs": [_tensor(rows)]})
    assert oip.status_code == 200
    parameters = oip.json()["parameters"]
    assert parameters["out_of_range_rows"] == 1
    # OIP parameter values are scalars, so the details are JSON text.
    assert json.loads(parameters["out_of_range"]) == {"rows": [1], "columns": {"f3": [1]}}
    assert oip.headers["x-corral-out-of-range"] == "1"

    logged = ranged.log_rows(plain.headers["x-request-id"])
    assert [r["out_of_range"] for r in logged] == [False, True, False]
    assert all(r["prediction_label"] is not None for r in logged)
    assert [r["out_of_range"] for r in ranged.log_rows("oip-1")] == [False, True, False]
    assert (
        ranged.metric("corral_out_of_range_rows_total", model="clf", version="1", column="f3") == 2
    )
    assert (
        ranged.metric("corral_out_of_range_rows_total", model="clf", version="1", column="f0") == 0
    )


def test_refuse_mode_refuses_the_request_without_calling_the_model(ranged: Ranged) -> None:
    ranged.client.create_config("clf", "strict", {"input_checks": {"out_of_range": "refuse"}})
    ranged.client.set_alias("clf", "strict", 1, config="strict")
    rows = _tainted(ranged.features)
    calls = ("corral_batch_requests_count", {"model": "clf", "version": "1"})
    assert ranged.metric(calls[0], **calls[1]) == 0

    plain = ranged.http.post(PREDICT, json={"inputs": example_records(rows), "alias": "strict"})
    assert plain.status_code == 422
    assert plain.headers["content-type"] == "application/problem+json"
    problem = plain.json()
    assert problem["code"] == "invalid_input"
    assert (
        "1 of 3 rows are outside the reference ranges of model 'clf' version 1"
        in (problem["detail"])
    )
    assert re.search(r"row 1: column 'f3' is 50, allowed \[-\S+, \S+\]", problem["detail"])

    oip = ranged.http.post(
        "/v2/models/clf/versions/strict/infer",
        json={"id": "oip-refused", "inputs": [_tensor(rows)]},
    )
    assert oip.status_code == 422
    assert "row 1: column 'f3' is 50" in oip.json()["error"]

    assert ranged.metric(calls[0], **calls[1]) == 0  # the model was never called
    assert (
        ranged.metric("corral_out_of_range_refused_requests_total", model="clf", version="1") == 2
    )
    assert (
        ranged.metric("corral_out_of_range_rows_total", model="clf", version="1", column="f3") == 2
    )
    # The refusal is in the log as a failed request, never as a prediction.
    (refused,) = ranged.log_rows(plain.headers["x-request-id"])
    assert (refused["error"], refused["out_of_range"]) == ("invalid_input", True)
    assert refused["prediction_label"] is None
    assert refused.get("in_f3") is None  # no inputs kept for a failed request

    # The same rows, all in range, are served under the same config.
    fine = ranged.http.post(
        PREDICT, json={"inputs": example_records(ranged.features[:3]), "alias": "strict"}
    )
    assert fine.status_code == 200
    assert ranged.metric(calls[0], **calls[1]) == 1


def test_explicit_config_ranges_override_the_example(ranged: Ranged) -> None:
    config = {"input_checks": {"margin": 100.0, "ranges": {"f0": [-0.5, 0.5]}}}
    ranged.client.create_config("clf", "narrow", config)
    ranged.client.set_alias("clf", "narrow", 1, config="narrow")
    rows = _tainted(ranged.features)  # f3 = 50 fits the example's range widened 100 times
    rows[2, 0] = 0.75
    reply = ranged.http.post(PREDICT, json={"inputs": example_records(rows), "alias": "narrow"})
    assert reply.status_code == 200
    flagged = reply.json()["out_of_range"]
    assert flagged["columns"].get("f3") is None
    assert 2 in flagged["columns"]["f0"]


def test_a_version_without_example_is_not_checked(ranged: Ranged, tmp_path: Path) -> None:
    save_classifier(tmp_path / "v2")
    ranged.client.register("clf", tmp_path / "v2", flavor="sklearn")
    rows = _tainted(ranged.features)
    reply = ranged.http.post(PREDICT, json={"inputs": rows.tolist(), "version": 2})
    assert reply.status_code == 200
    assert "out_of_range" not in reply.json()
    assert "x-corral-out-of-range" not in reply.headers
    (row, *_) = ranged.log_rows(reply.headers["x-request-id"])
    assert row["out_of_range"] is False


def test_logs_written_before_the_check_existed_still_read(ranged: Ranged) -> None:
    reply = ranged.http.post(PREDICT, json={"inputs": example_records(_tainted(ranged.features))})
    written = ranged.log_rows(reply.headers["x-request-id"])
    folder = ranged.settings.home / "artifacts" / "monitoring" / "predictions" / "model=clf"
    new = sorted(folder.glob("date=*/*.parquet"))[0]
    old = pq.read_table(new, partitioning=None).drop_columns(["out_of_range"])
    old = old.set_column(0, "request_id", pa.array(["old"] * len(old)))
    pq.write_table(old, new.parent / "000000-old.parquet")
    root = f"{ranged.settings.home / 'artifacts'}/monitoring"
    files = LogFiles(fsspec.filesystem("file"), root)
    now = datetime.now(UTC)
    window = open_window(
        files, "clf", now - timedelta(days=1), now + timedelta(hours=1), version=None
    )
    found = dict(
        window.con.sql(
            "SELECT request_id, list(out_of_range ORDER BY row) FROM preds GROUP BY request_id"
        ).fetchall()
    )
    assert found["old"] == [None] * len(written)
    assert found[reply.headers["x-request-id"]] == [False, True, False]


def test_a_config_naming_a_column_the_version_lacks_is_503_naming_it(ranged: Ranged) -> None:
    ranged.client.create_config("clf", "typo", {"input_checks": {"ranges": {"f99": [0, 1]}}})
    ranged.client.set_alias("clf", "typo", 1, config="typo")
    reply = ranged.http.post(
        PREDICT, json={"inputs": example_records(ranged.features[:1]), "alias": "typo"}
    )
    assert reply.status_code == 503
    assert "deployment config 'typo' revision 1" in reply.json()["detail"]
    assert "names column 'f99'" in reply.json()["detail"]
