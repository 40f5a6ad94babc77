"""Fuzzing predict and OIP infer through a real server: whatever arrives, never a 5xx.

The property: the status is below 500, the body is JSON, and a 4xx body is problem+json
on the plain routes and the spec's ``{"error": "..."}`` on the OIP routes. ``@example``s
pin the inputs that once broke it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from corral import Client
from corral.config import Settings
from corral.serving.inputs import OIP_DTYPES
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import FEATURES, register_classifiers

pytestmark = [
    # Reporting a failure, hypothesis imports libcst, which warns (mypy_extensions).
    pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"),
    # Huge but finite inputs (±1e308) overflow in the model's own arithmetic (sklearn's sums
    # and matmul): a served model only warns, but here warnings are errors in the server's
    # thread too. (Input checks do not rely on these warnings: they run under np.errstate.)
    pytest.mark.filterwarnings("ignore:overflow encountered in:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered in:RuntimeWarning"),
]
PREDICT = "/api/v1/models/clf/predict"
INFER = "/v2/models/clf/infer"
PROBLEM = "application/problem+json"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client of one server for the whole module, serving 'clf' as ``served`` does."""
    tmp: Path = tmp_path_factory.mktemp("serving-fuzz")
    settings = Settings(home=tmp / "home")
    with Client(settings=settings, actor="tester") as client:
        register_classifiers(client, tmp)
        with ServerThread(settings) as server, httpx.Client(base_url=server.url, timeout=60) as h:
            yield h


def check(response: httpx.Response, *, oip: bool) -> None:
    """Never a 5xx; always JSON; 4xx in the route's error shape."""
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code < 400:
        return
    if oip:
        assert response.headers["content-type"] == "application/json", response.text
        assert isinstance(body, dict), response.text
        assert isinstance(body.get("error"), str), response.text
        assert body["error"], response.text
    else:
        assert response.headers["content-type"].startswith(PROBLEM), response.text
        assert body["status"] == response.status_code, response.text
        assert isinstance(body["detail"], str), response.text
        assert isinstance(body["code"], str), response.text


def post(http: httpx.Client, path: str, body: Any, **headers: str) -> httpx.Response:
    content = json.dumps(body, ensure_ascii=False).encode()
    return http.post(path, content=content, headers={"content-type": "application/json", **headers})


# -- strategies -----------------------------------------------------------------------

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=24,
)
odd_numbers: st.SearchStrategy[Any] = st.sampled_from(
    [0, -1, 1e308, -1e308, 1e-320, 2**31, 2**63 - 1, 2**63, 2**64, 2**70, -(2**63), -(2**70)]
)
odd_cells: st.SearchStrategy[Any] = (
    odd_numbers
    | st.sampled_from(["NaN", "nan", "Infinity", "-inf", "1e999", "", "1.5", "0x10", "١", "🐄"])
    | st.none()
    | st.booleans()
    | st.just([])
    | st.lists(st.floats(-2, 2), min_size=1, max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=1)
    | st.text(max_size=4)
)
good_cells: st.SearchStrategy[Any] = st.floats(-3, 3) | st.integers(-3, 3)
names = st.sampled_from([*FEATURES, "input-0", "", "f20", "F0", "é", "🐄", "f0 ", "a" * 300])
shape_numbers: st.SearchStrategy[Any] = st.integers(-3, 25) | st.sampled_from(
    [2**31, 2**63 - 1, 2**64, 2**70, -(2**63)]
)
odd_refs = (
    st.sampled_from(["-1", "0", "99999999999999999999", "a b", "²", "٣", "1.5", " 1", "+1"])
    | st.sampled_from(["0x1", "%", "é", "🐄", "A", "-", "_x", "a" * 200, "latest", "champion"])
    | st.text(min_size=1, max_size=12)
).filter(lambda s: "/" not in s and s not in (".", ".."))


def header_values(size: int) -> st.SearchStrategy[str]:
    """Printable ASCII as HTTP allows it in a header (no surrounding blanks)."""
    return st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=size).map(str.strip)


@st.composite
def mutated_rows(draw: st.DrawFn) -> list[list[Any]]:
    """A matrix of numbers, mostly 20 wide, with a few cells or rows made wrong."""
    count = draw(st.integers(0, 3))
    width = draw(st.sampled_from([20, 20, 20, 0, 1, 19, 21]))
    matrix: list[list[Any]] = [
        draw(st.lists(good_cells, min_size=width, max_size=width)) for _ in range(count)
    ]
    for _ in range(draw(st.integers(0, 3))):
        if not matrix:
            break
        row = draw(st.integers(0, len(matrix) - 1))
        one_cell = draw(st.booleans())
        if matrix[row] and one_cell:
            matrix[row][draw(st.integers(0, len(matrix[row]) - 1))] = draw(odd_cells)
        else:
            matrix[row] = draw(st.lists(good_cells, max_size=22))
    return matrix


@st.composite
def predict_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Plain predict bodies: an array, records or columns, slightly wrong."""
    matrix = draw(mutated_rows())
    layout = draw(st.sampled_from(["array", "records", "columns", "scalar"]))
    inputs: Any
    if layout == "array":
        inputs = matrix
    elif layout == "scalar":
        inputs = draw(odd_cells)
    else:
        keys = list(FEATURES)
        if draw(st.booleans()):
            keys[draw(st.integers(0, 19))] = draw(names)
        if layout == "records":
            inputs = [dict(zip(keys, row, strict=False)) for row in matrix]
        else:
            inputs = {k: [row[i] for row in matrix if i < len(row)] for i, k in enumerate(keys)}
            if draw(st.booleans()):
                inputs[keys[0]] = draw(odd_cells)
    body: dict[str, Any] = {"inputs": inputs}
    for field in ("version", "alias", "key"):
        if draw(st.booleans()):
            body[field] = draw(odd_refs | odd_numbers | json_values)
    return body


@st.composite
def tensors(draw: st.DrawFn) -> list[Any]:
    """OIP input tensors: one matrix or one per column, with wrong shapes, dtypes or data."""
    datatype = draw(st.sampled_from(list(OIP_DTYPES)) | st.text(max_size=5))
    matrix = draw(mutated_rows())
    if draw(st.booleans()):
        width = len(matrix[0]) if matrix else 0
        flat = [cell for row in matrix for cell in row]
        declared = [len(matrix), width]
        specs: list[dict[str, Any]] = [{"name": draw(names), "data": flat, "shape": declared}]
    else:
        specs = [
            {
                "name": name,
                "data": [row[i] for row in matrix if i < len(row)],
                "shape": [len(matrix)],
            }
            for i, name in enumerate(FEATURES)
        ]
    for spec in specs:
        spec["datatype"] = datatype
    spec = specs[draw(st.integers(0, len(specs) - 1))]
    mutation = draw(st.sampled_from(["none", "shape", "nest", "drop", "parameters", "odd"]))
    if mutation == "shape":
        spec["shape"] = draw(st.lists(shape_numbers, max_size=3) | json_values)
    elif mutation == "nest":
        spec["data"] = [spec["data"]]
    elif mutation == "drop":
        del spec[draw(st.sampled_from(["name", "shape", "datatype", "data"]))]
    elif mutation == "parameters":
        spec["parameters"] = draw(st.just({"binary_data_size": 80}) | json_values)
        if draw(st.booleans()):
            spec.pop("data")
    elif mutation == "odd":
        spec[draw(st.sampled_from(["name", "shape", "datatype", "data"]))] = draw(json_values)
    return specs


@st.composite
def infer_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": draw(tensors())}
    if draw(st.booleans()):
        body["outputs"] = draw(
            st.just([{"name": "predict"}])
            | st.lists(st.fixed_dictionaries({"name": names}), max_size=2)
            | json_values
        )
    if draw(st.booleans()):
        body["id"] = draw(json_values)
    if draw(st.booleans()):
        body["parameters"] = draw(
            st.fixed_dictionaries({"key": odd_refs | json_values}) | json_values
        )
    return body


# -- bodies ---------------------------------------------------------------------------


def tensor(**fields: Any) -> dict[str, Any]:
    """A good 1 × 20 FP64 tensor, with ``fields`` replaced."""
    return {"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [0.5] * 20, **fields}


@FUZZ
@given(body=json_values)
def test_predict_survives_any_json(http: httpx.Client, body: Any) -> None:
    check(post(http, PREDICT, body), oip=False)


@FUZZ
@given(body=json_values)
def test_infer_survives_any_json(http: httpx.Client, body: Any) -> None:
    check(post(http, INFER, body), oip=True)


@FUZZ
@given(body=predict_bodies())
@example(body={"inputs": [[0.5] * 20], "alias": "²"})  # was a 500: int('²') after isdigit()
@example(body={"inputs": [[0.5] * 20], "version": "٣"})
@example(body={"inputs": [[1e308, -1e308] * 10]})  # finite: the model answers
def test_predict_survives_bodies_shaped_like_requests(http: httpx.Client, body: Any) -> None:
    check(post(http, PREDICT, body), oip=False)


@FUZZ
@given(body=infer_bodies())
@example(body={"inputs": [tensor(datatype={})]})  # was a 500: an unhashable datatype
@example(body={"inputs": [tensor(datatype=["FP64"])]})
@example(body={"inputs": [tensor(shape=[1] * 65, data=[0.5])]})  # was a 500: NumPy's 64 dims
@example(body={"inputs": [tensor(datatype="FP32", data=[1e300] * 20)]})  # was a 500: overflow
@example(body={"inputs": [tensor(datatype="FP16", data=[7e4] * 20)]})
@example(body={"inputs": [tensor(parameters=[])]})
@example(body={"inputs": [tensor(shape=[0, 2**62], data=[])]})  # was a 500: reshape too big
def test_infer_survives_tensors_shaped_like_requests(http: httpx.Client, body: Any) -> None:
    check(post(http, INFER, body), oip=True)


@pytest.mark.parametrize(
    ("datatype", "value"),
    [
        ("FP64", "1.5"),
        ("FP64", "NaN"),
        ("BOOL", "no"),
        ("BOOL", 2),
        ("UINT8", 300),
        ("UINT8", -1),
        ("INT64", 1.5),
        ("INT64", 2**64),
        ("FP32", 1e300),
        ("FP16", 7e4),
    ],
)
def test_tensor_data_its_datatype_cannot_hold_is_a_422_naming_the_input(
    http: httpx.Client, datatype: str, value: Any
) -> None:
    response = post(http, INFER, {"inputs": [tensor(datatype=datatype, data=[value] * 20)]})
    assert response.status_code == 422, response.text
    assert f"input 'x' is declared {datatype}" in response.json()["error"]


@pytest.mark.parametrize(
    ("datatype", "value"), [("BOOL", True), ("UINT8", 255), ("INT64", 2.0), ("FP16", 1.5)]
)
def test_tensor_data_its_datatype_can_hold_is_accepted(
    http: httpx.Client, datatype: str, value: Any
) -> None:
    response = post(http, INFER, {"inputs": [tensor(datatype=datatype, data=[value] * 20)]})
    assert response.status_code == 200, response.text


@FUZZ
@given(
    raw=st.binary(max_size=64),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/octet-stream", "", "x/y; charset=nope"]
    ),
)
def test_bytes_that_are_not_json_are_a_4xx(
    http: httpx.Client, raw: bytes, content_type: str
) -> None:
    for path, oip in ((PREDICT, False), (INFER, True)):
        check(http.post(path, content=raw, headers={"content-type": content_type}), oip=oip)


@FUZZ
@given(
    content_type=st.sampled_from(
        ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "", "*/*"]
    )
    | header_values(30),
    json_length=st.none() | header_values(6),
)
def test_a_good_body_under_any_content_type_never_fails_the_server(
    http: httpx.Client, content_type: str, json_length: str | None
) -> None:
    for path, body, oip in (
        (PREDICT, {"inputs": [[0.5] * 20]}, False),
        (INFER, {"inputs": [tensor()]}, True),
    ):
        content = json.dumps(body).encode()
        headers = {"content-type": content_type}
        if json_length is not None:
            headers["inference-header-content-length"] = json_length
        response = http.post(path, content=content, headers=headers)
        check(response, oip=oip)
        if json_length is None or json_length == str(len(content)):
            assert response.status_code == 200, response.text


def test_a_json_length_header_covering_the_whole_body_is_accepted(http: httpx.Client) -> None:
    content = json.dumps({"inputs": [tensor()]}).encode()
    whole = {"inference-header-content-length": str(len(content))}
    assert http.post(INFER, content=content, headers=whole).status_code == 200
    binary = {"inference-header-content-length": str(len(content) - 4)}
    refused = http.post(INFER, content=content, headers=binary)
    assert refused.status_code == 400
    assert "binary_data=False" in refused.json()["error"]


# -- paths, query parameters and headers ------------------------------------------------


@FUZZ
@given(ref=odd_refs)
@example(ref="-1")  # .../ready was a 503 (not ready) for a version that cannot exist
@example(ref="²")  # was a 500: int('²') after isdigit()
@example(ref="99999999999999999999")
def test_odd_version_segments_are_a_4xx_in_the_oip_shape(http: httpx.Client, ref: str) -> None:
    base = f"/v2/models/clf/versions/{quote(ref, safe='')}"
    check(http.get(base), oip=True)
    check(http.get(f"{base}/ready"), oip=True)
    check(post(http, f"{base}/infer", {"inputs": [tensor()]}), oip=True)


@FUZZ
@given(name=(odd_refs | names).filter(bool))  # an empty segment is another route: a plain 404
@example(name="A")  # .../ready was a 503 (not ready) for a name that cannot exist
def test_odd_model_names_are_a_4xx_in_each_routes_shape(http: httpx.Client, name: str) -> None:
    segment = quote(name, safe="")
    check(http.get(f"/v2/models/{segment}"), oip=True)
    check(http.get(f"/v2/models/{segment}/ready"), oip=True)
    check(post(http, f"/v2/models/{segment}/infer", {"inputs": [tensor()]}), oip=True)
    check(post(http, f"/api/v1/models/{segment}/predict", {"inputs": [[0.5] * 20]}), oip=False)


@FUZZ
@given(version=odd_refs, alias=odd_refs, consumer=header_values(140), key=header_values(140))
@example(version="²", alias="²", consumer="", key="")
def test_odd_query_parameters_and_headers_are_a_4xx(
    http: httpx.Client, version: str, alias: str, consumer: str, key: str
) -> None:
    headers = {"x-corral-consumer": consumer, "x-corral-request-key": key}
    body = json.dumps({"inputs": [[0.5] * 20]}).encode()
    for params in ({"version": version}, {"alias": alias}):
        response = http.post(PREDICT, params=params, content=body, headers=headers)
        check(response, oip=False)
    check(post(http, INFER, {"inputs": [tensor()]}, **headers), oip=True)
