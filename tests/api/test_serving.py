"""Prediction over HTTP: plain JSON and OIP V2, validation, routing, metrics, request ids."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.fixtures.serving import FEATURES, Served, example_records, training_data

PROBLEM = "application/problem+json"


@pytest.fixture
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


def rows(count: int = 5) -> np.ndarray:
    features, _ = training_data(seed=1, rows=count)
    return features


def _problem(response: httpx.Response, status: int, code: str, *words: str) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == code
    for word in words:
        assert word in body["detail"], body["detail"]
    return body  # type: ignore[no-any-return]


# -- plain JSON -------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["array", "records", "columns"])
def test_predict_accepts_arrays_records_and_columns(
    served: Served, http: httpx.Client, layout: str
) -> None:
    data = rows()
    inputs = {
        "array": data.tolist(),
        "records": example_records(data),
        "columns": {name: data[:, i].tolist() for i, name in enumerate(FEATURES)},
    }[layout]
    response = http.post("/api/v1/models/clf/predict", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "clf"
    assert body["version"] == 1
    assert body["alias"] == "champion"
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["predictions"] == served.first.predict(data).tolist()


def test_records_in_any_key_order_are_laid_out_by_the_signature(
    served: Served, http: httpx.Client
) -> None:
    data = rows(3)
    shuffled = [dict(reversed(list(record.items()))) for record in example_records(data)]
    body = http.post("/api/v1/models/clf/predict", json={"inputs": shuffled}).json()
    assert body["predictions"] == served.first.predict(data).tolist()


def test_predict_by_version_alias_and_latest(served: Served, http: httpx.Client) -> None:
    data = rows()
    by_version = http.post(
        "/api/v1/models/clf/predict", json={"inputs": data.tolist(), "version": 2}
    )
    assert by_version.json()["version"] == 2
    assert by_version.json()["predictions"] == served.flipped.predict(data).tolist()
    by_query = http.post(
        "/api/v1/models/clf/predict?alias=champion", json={"inputs": data.tolist()}
    )
    assert by_query.json()["version"] == 1
    latest = http.post(
        "/api/v1/models/clf/predict", json={"inputs": data.tolist(), "alias": "latest"}
    )
    assert latest.json()["version"] == 2


def test_without_a_champion_the_latest_version_answers(served: Served, http: httpx.Client) -> None:
    served.client.delete_alias("clf", "champion")
    deadline_body = None
    for _ in range(200):  # the server notices the registry change within its poll interval
        deadline_body = http.post("/api/v1/models/clf/predict", json={"inputs": rows(1).tolist()})
        if deadline_body.json()["version"] == 2:
            break
    assert deadline_body is not None
    assert deadline_body.json()["version"] == 2
    assert deadline_body.json()["alias"] is None


def test_a_pinned_consumer_keeps_its_version_when_the_alias_moves(
    served: Served, http: httpx.Client
) -> None:
    served.client.create_consumer("billing", "clf", version=1)
    served.client.create_consumer("web", "clf", alias="champion")
    served.client.set_alias("clf", "champion", 2, reason="promote")
    inputs = {"inputs": rows(1).tolist()}
    seen_web = set()
    for _ in range(200):
        web = http.post(
            "/api/v1/models/clf/predict", json=inputs, headers={"X-Corral-Consumer": "web"}
        )
        seen_web.add(web.json()["version"])
        if web.json()["version"] == 2:
            break
    assert 2 in seen_web
    pinned = http.post(
        "/api/v1/models/clf/predict", json=inputs, headers={"X-Corral-Consumer": "billing"}
    )
    assert pinned.json()["version"] == 1
    assert pinned.json()["consumer"] == "billing"
    conflict = http.post(
        "/api/v1/models/clf/predict",
        json={**inputs, "version": 2},
        headers={"X-Corral-Consumer": "billing"},
    )
    _problem(conflict, 409, "conflict", "pinned to version 1")
    unknown = http.post(
        "/api/v1/models/clf/predict", json=inputs, headers={"X-Corral-Consumer": "nobody"}
    )
    _problem(unknown, 404, "not_found", "nobody")


# -- validation -------------------------------------------------------------------------


def test_missing_column_is_422_naming_it(http: httpx.Client) -> None:
    record = example_records(rows(1))[0]
    del record["f7"]
    body = _problem(
        http.post("/api/v1/models/clf/predict", json={"inputs": [record]}),
        422,
        "invalid_input",
        "'f7'",
    )
    assert "expected" in body["detail"]


def test_unknown_column_is_422_naming_it(http: httpx.Client) -> None:
    record = {**example_records(rows(1))[0], "surprise": 1.0}
    _problem(
        http.post("/api/v1/models/clf/predict", json={"inputs": [record]}),
        422,
        "invalid_input",
        "'surprise'",
    )


def test_wrong_dtype_is_422_naming_the_column_and_row(http: httpx.Client) -> None:
    records = example_records(rows(2))
    records[1]["f3"] = "tall"  # type: ignore[assignment]
    _problem(
        http.post("/api/v1/models/clf/predict", json={"inputs": records}),
        422,
        "invalid_input",
        "row 1",
        "'f3'",
        "float64",
    )
    array = rows(2).tolist()
    array[0][4] = "x"
    _problem(
        http.post("/api/v1/models/clf/predict", json={"inputs": array}),
        422,
        "invalid_input",
        "'f4'",
    )


def test_wrong_shape_is_422_saying_what_was_expected(http: httpx.Client) -> None:
    _problem(
        http.post("/api/v1/models/clf/predict", json={"inputs": [[1.0, 2.0]]}),
        422,
        "invalid_input",
        "2 values per row",
        "expected 20",
    )
    _problem(
        http.post("/api/v1/models/clf/predict", json={"inputs": [1.0, 2.0]}),
        422,
        "invalid_input",
        "2-D",
    )
    _problem(
        http.post("/api/v1/models/clf/predict", json={"inputs": [[1.0] * 20, [1.0] * 19]}),
        422,
        "invalid_input",
        "equal length",
    )


def test_missing_values_are_refused_unless_the_config_allows_them(
    served: Served, http: httpx.Client
) -> None:
    array = rows(2).tolist()
    array[1][2] = None
    _problem(
        http.post("/api/v1/models/clf/predict", json={"inputs": array}),
        422,
        "invalid_input",
        "row 1",
        "'f2'",
    )


def test_malformed_json_is_400(http: httpx.Client) -> None:
    response = http.post(
        "/api/v1/models/clf/predict",
        content=b'{"inputs": [[1, 2}',
        headers={"content-type": "application/json"},
    )
    _problem(response, 400, "invalid_argument", "not valid JSON")


def test_a_body_over_the_limit_is_413(tmp_path, served: Served) -> None:  # type: ignore[no-untyped-def]
    from corral.config import Settings
    from tests.fixtures.corral import ServerThread

    small = Settings(home=served.settings.home, max_request_bytes=1000)
    with ServerThread(small) as server, httpx.Client(base_url=server.url) as client:
        response = client.post("/api/v1/models/clf/predict", json={"inputs": rows(20).tolist()})
        _problem(response, 413, "too_large", "1000 bytes")


def test_more_rows_than_allowed_is_413(served: Served, http: httpx.Client) -> None:
    served.client.create_config("clf", "small", {"limits": {"max_rows": 3}})
    served.client.set_alias("clf", "tight", 1, config="small")
    response = http.post(
        "/api/v1/models/clf/predict", json={"inputs": rows(4).tolist(), "alias": "tight"}
    )
    _problem(response, 413, "too_large", "4 rows", "at most 3")


def test_unknown_model_is_404_and_bad_names_are_400(http: httpx.Client) -> None:
    _problem(
        http.post("/api/v1/models/ghost/predict", json={"inputs": [[1.0]]}),
        404,
        "not_found",
        "ghost",
    )
    _problem(
        http.post("/api/v1/models/clf/predict", json={"inputs": [[1.0] * 20], "version": 9}),
        404,
        "not_found",
        "version 9",
    )


# -- OIP V2 -----------------------------------------------------------------------------


def _tensor(data: np.ndarray, name: str = "input-0", datatype: str = "FP64") -> dict:  # type: ignore[type-arg]
    return {
        "name": name,
        "shape": list(data.shape),
        "datatype": datatype,
        "data": data.ravel().tolist(),
    }


def test_oip_health_and_metadata(http: httpx.Client) -> None:
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}
    assert http.get("/v2").json()["name"] == "corral"
    meta = http.get("/v2/models/clf").json()
    assert meta["name"] == "clf"
    assert meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    assert http.get("/v2/models/clf/ready").json() == {"name": "clf", "ready": True}
    assert http.get("/v2/models/clf/versions/2/ready").status_code == 200
    assert http.get("/v2/models/clf/versions/champion").json()["versions"] == ["1"]


def test_oip_infer_one_matrix_and_one_tensor_per_column(served: Served, http: httpx.Client) -> None:
    data = rows(4)
    expected = served.first.predict(data).tolist()
    matrix = http.post("/v2/models/clf/infer", json={"id": "r1", "inputs": [_tensor(data)]})
    assert matrix.status_code == 200, matrix.text
    body = matrix.json()
    assert body["model_name"] == "clf"
    assert body["model_version"] == "1"
    assert body["id"] == "r1"
    assert body["outputs"][0]["data"] == expected
    assert body["outputs"][0]["shape"] == [4]
    columns = [_tensor(data[:, i], name) for i, name in enumerate(FEATURES)]
    by_column = http.post("/v2/models/clf/versions/1/infer", json={"inputs": columns})
    assert by_column.json()["outputs"][0]["data"] == expected


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "INT32", "INT64"])
def test_oip_accepts_several_numeric_dtypes(
    served: Served, http: httpx.Client, datatype: str
) -> None:
    data = np.round(rows(3) * 3)
    response = http.post(
        "/v2/models/clf/infer", json={"inputs": [_tensor(data, datatype=datatype)]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == served.first.predict(data).tolist()


def test_oip_infer_by_alias_in_the_version_segment(served: Served, http: httpx.Client) -> None:
    served.client.set_alias("clf", "challenger", 2)
    data = rows(2)
    response = http.post(
        "/v2/models/clf/versions/challenger/infer", json={"inputs": [_tensor(data)]}
    )
    assert response.json()["model_version"] == "2"
    assert response.json()["outputs"][0]["data"] == served.flipped.predict(data).tolist()


def test_oip_errors_use_the_spec_body(http: httpx.Client) -> None:
    bad_shape = http.post(
        "/v2/models/clf/infer",
        json={"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [1.0] * 19}]},
    )
    assert bad_shape.status_code == 422
    assert "needs 20 values" in bad_shape.json()["error"]
    unknown = http.post("/v2/models/ghost/infer", json={"inputs": []})
    assert unknown.status_code == 404
    assert "ghost" in unknown.json()["error"]
    bad_type = http.post(
        "/v2/models/clf/infer",
        json={"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP99", "data": [1.0] * 20}]},
    )
    assert bad_type.status_code == 422
    assert "FP99" in bad_type.json()["error"]


# -- metrics and request ids ------------------------------------------------------------


def test_metrics_count_requests_errors_batches_and_loads(http: httpx.Client) -> None:
    for _ in range(3):
        http.post("/api/v1/models/clf/predict", json={"inputs": rows(2).tolist()})
    http.post("/api/v1/models/clf/predict", json={"inputs": [[1.0]]})
    text = http.get("/metrics").text
    assert 'corral_predict_requests_total{consumer="",model="clf",version="1"} 4.0' in text
    assert (
        'corral_predict_errors_total{code="invalid_input",consumer="",model="clf",version="1"} 1.0'
        in text
    )
    assert (
        'corral_predict_latency_seconds_bucket{consumer="",le="+Inf",model="clf",version="1"} 4.0'
        in text
    )
    assert 'corral_batch_rows_count{model="clf",version="1"}' in text
    assert 'corral_model_load_seconds_count{model="clf",version="1"} 1.0' in text
    assert "corral_model_cache_bytes" in text
    assert 'corral_predict_rows_total{model="clf",version="1"} 6.0' in text


def test_every_response_carries_a_request_id(http: httpx.Client) -> None:
    mine = http.get("/api/v1/models", headers={"X-Request-Id": "trace-42"})
    assert mine.headers["x-request-id"] == "trace-42"
    fresh = {http.get("/v2/health/live").headers["x-request-id"] for _ in range(3)}
    assert len(fresh) == 3
    error = http.get("/api/v1/models/ghost")
    assert error.headers["x-request-id"]
