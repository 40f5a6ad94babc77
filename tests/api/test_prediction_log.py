"""A served model's prediction log: Parquet per model and day, sampling, sensitive columns."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corral import Client
from corral.config import Settings
from corral.serving.recorder import is_sampled
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import (
    FEATURES,
    example_records,
    register_classifiers,
    save_classifier,
    training_data,
)

CONTRACT = [
    "request_id", "row", "ts", "model", "version", "alias", "consumer", "latency_ms", "error",
    "prediction_label", "prediction_value", "score", "proba",
]  # fmt: skip
SALT = "test-salt"


@dataclass
class Home:
    settings: Settings
    client: Client
    model: object
    tmp: Path

    def log(self, model: str = "clf") -> pa.Table:
        folder = self.settings.home / "artifacts" / "monitoring" / "predictions" / f"model={model}"
        files = sorted(folder.glob("date=*/*.parquet"))
        assert files, f"no log files under {folder}"
        today = datetime.now(UTC).date().isoformat()
        assert {f.parent.name for f in files} <= {f"date={today}"}
        return pa.concat_tables(
            [pq.read_table(f, partitioning=None) for f in files], promote_options="default"
        )


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    settings = Settings(
        home=tmp_path / "home",
        route_poll_seconds=0.05,
        log_flush_seconds=30.0,  # only a graceful stop writes: what the tests check
        log_hash_salt=SALT,
    )
    with Client(settings=settings, actor="tester") as client:
        first, _ = register_classifiers(client, tmp_path)
        yield Home(settings, client, first, tmp_path)


def test_served_predictions_are_written_as_parquet_with_the_contract_columns(home: Home) -> None:
    features, _ = training_data()
    with ServerThread(home.settings) as server, httpx.Client(base_url=server.url) as http:
        plain = http.post(
            "/api/v1/models/clf/predict", json={"inputs": example_records(features[:5])}
        )
        oip = http.post(
            "/v2/models/clf/infer",
            json={
                "id": "oip-request",
                "inputs": [
                    {"name": "x", "shape": [2, 20], "datatype": "FP64",
                     "data": features[5:7].ravel().tolist()}
                ],
            },
        )  # fmt: skip
        failed = http.post("/api/v1/models/clf/predict", json={"inputs": [[1.0, 2.0]]})
        unrouted = http.post("/api/v1/models/nope/predict", json={"inputs": [[1.0]]})
    assert (plain.status_code, oip.status_code, failed.status_code) == (200, 200, 422)
    assert unrouted.status_code == 404
    table = home.log()
    assert table.column_names[: len(CONTRACT)] == CONTRACT
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("row").type == pa.int32()
    assert table.schema.field("in_f0").type == pa.float64()
    rows = table.to_pylist()
    assert len(rows) == 5 + 2 + 1  # the request for an unknown model has no route: not logged
    by_id: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_id.setdefault(str(row["request_id"]), []).append(row)
    served = sorted(by_id[plain.headers["x-request-id"]], key=lambda r: r["row"])  # type: ignore[arg-type, return-value]
    assert [r["row"] for r in served] == [0, 1, 2, 3, 4]
    assert [r["prediction_label"] for r in served] == [str(p) for p in plain.json()["predictions"]]
    expected = home.model.predict_proba(features[:5])  # type: ignore[attr-defined]
    assert np.allclose([r["proba"] for r in served], expected)
    assert np.allclose([r["score"] for r in served], expected[:, 1])
    assert [r["in_f3"] for r in served] == pytest.approx(features[:5, 3].tolist())
    assert all(r["version"] == 1 and r["alias"] == "champion" for r in served)
    assert len(by_id["oip-request"]) == 2
    (error,) = by_id[failed.headers["x-request-id"]]
    assert error["error"] == "invalid_input" or error["error"] == "invalid_argument"
    assert error["prediction_label"] is None
    assert all(r["latency_ms"] > 0 for r in rows)


def test_the_deployment_config_samples_requests_by_id(home: Home) -> None:
    home.client.create_config("clf", "sampled", {"monitoring": {"sample_rate": 0.3}})
    home.client.set_alias("clf", "champion", 1, config="sampled")
    features, _ = training_data()
    body = {"inputs": example_records(features[:1])}
    ids = [f"req-{i:03d}" for i in range(80)]
    with ServerThread(home.settings) as server, httpx.Client(base_url=server.url) as http:
        for request_id in ids:
            reply = http.post(
                "/api/v1/models/clf/predict", json=body, headers={"X-Request-Id": request_id}
            )
            assert reply.status_code == 200
    logged = set(home.log().column("request_id").to_pylist())
    assert logged == {i for i in ids if is_sampled(i, 0.3)}
    assert 0 < len(logged) < len(ids)


def test_sensitive_columns_are_hashed_in_the_log(home: Home) -> None:
    features, _ = training_data()
    save_classifier(home.tmp / "v3")
    with ServerThread(home.settings) as server:
        with Client(server.url, actor="tester") as remote:  # registered over REST
            version = remote.register(
                "private",
                home.tmp / "v3",
                flavor="sklearn",
                example=example_records(features[:3]),
                sensitive=["f0", "f1"],
                alias="champion",
            )
        assert version.signature is not None
        assert [c.name for c in version.signature.inputs if c.sensitive] == ["f0", "f1"]
        reply = httpx.post(
            f"{server.url}/api/v1/models/private/predict",
            json={"inputs": example_records(features[:2])},
        )
        assert reply.status_code == 200
    rows = home.log("private").to_pylist()
    digest = hashlib.sha256(f"{SALT}{float(features[0, 0])!r}".encode()).hexdigest()[:16]
    assert rows[0]["in_f0"] == f"sha256:{digest}"
    assert all(str(r["in_f1"]).startswith("sha256:") for r in rows)
    assert rows[0]["in_f2"] == pytest.approx(features[0, 2])


def test_an_unknown_sensitive_column_is_refused_naming_it(home: Home) -> None:
    from corral.errors import InvalidArgument

    features, _ = training_data()
    with pytest.raises(InvalidArgument, match="'age'"):
        home.client.register(
            "clf",
            home.tmp / "v1",
            flavor="sklearn",
            example=example_records(features[:2]),
            sensitive=["age"],
        )
    stored = home.client.get_version("clf", 1).signature
    assert stored is not None
    assert not any(c.sensitive for c in stored.inputs)
    assert FEATURES[0] == "f0"


def test_a_graceful_stop_writes_every_queued_row(home: Home) -> None:
    features, _ = training_data()
    body = {"inputs": example_records(features[:10])}
    with ServerThread(home.settings) as server, httpx.Client(base_url=server.url) as http:
        for _ in range(30):
            assert http.post("/api/v1/models/clf/predict", json=body).status_code == 200
        folder = home.settings.home / "artifacts" / "monitoring"
        assert not list(folder.glob("predictions/**/*.parquet"))  # flush interval is 30 s
    assert home.log().num_rows == 300
