"""Request limits over HTTP: too big, too many rows, too big an upload (413), too deep (400).

A real server on loopback with small limits, anonymous access closed and a real token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral import Client
from corral.api.app import create_app
from corral.config import Settings
from corral.wiring import open_corral
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import FEATURES, register_classifiers

MAX_BYTES = 250_000  # room for a body nested 100 000 deep
MAX_ROWS = 5
MAX_UPLOAD = 1000
MAX_DEPTH = 8
PREDICT = "/api/v1/models/clf/predict"
INFER = "/v2/models/clf/infer"
JSON = {"content-type": "application/json"}


def rows(count: int) -> list[dict[str, float]]:
    return [dict.fromkeys(FEATURES, 0.5) for _ in range(count)]


def oip_body(count: int) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": name, "shape": [count], "datatype": "FP64", "data": [0.5] * count}
            for name in FEATURES
        ]
    }


@dataclass
class Site:
    http: httpx.Client

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, **kwargs)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    base = Settings(
        home=tmp_path / "home",
        anonymous_role="none",
        monitor_evaluate_seconds=0,
        log_predictions=False,
    )
    with Client(settings=base, actor="tester") as local:
        register_classifiers(local, tmp_path)
    settings = base.model_copy(
        update={
            "max_request_bytes": MAX_BYTES,
            "max_request_rows": MAX_ROWS,
            "max_upload_bytes": MAX_UPLOAD,
            "max_json_depth": MAX_DEPTH,
        }
    )
    wired = open_corral(settings)
    secret = wired.identity.bootstrap_admin()
    assert secret is not None
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        with (
            ServerThread(create_app(settings, corral=wired)) as server,
            httpx.Client(base_url=server.url, headers=headers, timeout=30) as http,
        ):
            yield Site(http)
    finally:
        wired.close()


def assert_problem(reply: httpx.Response, status: int, *words: str, oip: bool = False) -> None:
    assert reply.status_code == status, reply.text
    detail = reply.json()["error"] if oip else reply.json()["detail"]
    for word in words:
        assert word in detail, detail


def streamed(data: bytes) -> Iterator[bytes]:
    """A body sent in chunks without a Content-Length (chunked transfer encoding)."""
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


def nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


# -- 413 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "oip"), [(PREDICT, False), (INFER, True)])
def test_a_prediction_body_over_max_request_bytes_is_413(site: Site, path: str, oip: bool) -> None:
    big = b'{"inputs": [' + b"0," * MAX_BYTES + b"0]}"
    assert_problem(site.post(path, content=big, headers=JSON), 413, f"{MAX_BYTES} bytes", oip=oip)
    chunked = site.post(path, content=streamed(big), headers=JSON)
    assert_problem(chunked, 413, f"limit of {MAX_BYTES} bytes", oip=oip)


def test_more_rows_than_max_request_rows_is_413(site: Site) -> None:
    assert site.post(PREDICT, json={"inputs": rows(MAX_ROWS)}).status_code == 200
    reply = site.post(PREDICT, json={"inputs": rows(MAX_ROWS + 1)})
    assert_problem(reply, 413, f"{MAX_ROWS + 1} rows", f"at most {MAX_ROWS}")
    assert site.post(INFER, json=oip_body(MAX_ROWS)).status_code == 200
    assert_problem(site.post(INFER, json=oip_body(MAX_ROWS + 1)), 413, "rows", oip=True)


def test_an_upload_over_max_upload_bytes_is_413(site: Site) -> None:
    upload = site.post("/api/v1/uploads").json()["upload_id"]
    files = f"/api/v1/uploads/{upload}/files"
    fits = site.http.put(f"{files}/small.bin", content=b"x" * MAX_UPLOAD)
    assert fits.status_code == 201, fits.text
    declared = site.http.put(f"{files}/big.bin", content=b"x" * (MAX_UPLOAD + 1))
    assert_problem(declared, 413, "file 'big.bin'", f"limit of {MAX_UPLOAD} bytes")
    chunked = site.http.put(f"{files}/big.bin", content=streamed(b"x" * (3 * MAX_UPLOAD)))
    assert_problem(chunked, 413, "max_upload_bytes")
    assert chunked.json()["code"] == "too_large"


# -- JSON nesting ----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_json_nested_past_max_json_depth_is_400_on_every_door(site: Site, depth: int) -> None:
    """Even 100 000 levels (which would blow a recursive parser's stack) get a clean 400."""
    words = (f"more than {MAX_DEPTH} deep", "max_json_depth")
    body = b'{"inputs": ' + nested(depth - 1) + b"}"
    assert_problem(site.post(PREDICT, content=body, headers=JSON), 400, *words)
    assert_problem(site.post(INFER, content=body, headers=JSON), 400, *words, oip=True)
    api = b'{"name": "deep", "description": ' + nested(depth - 1, '"x"') + b"}"
    assert_problem(site.post("/api/v1/models", content=api, headers=JSON), 400, *words)
    # Sent in chunks, without a Content-Length, the nesting is followed as it streams.
    chunked = site.post("/api/v1/models", content=streamed(api), headers=JSON)
    assert_problem(chunked, 400, *words)
    # Nothing broke: the next request is served.
    assert site.post(PREDICT, json={"inputs": rows(1)}).status_code == 200


def test_json_at_max_json_depth_is_not_refused_for_its_depth(site: Site) -> None:
    # Depth MAX_DEPTH: refused only by the signature check (422), not the depth check.
    body = b'{"inputs": ' + nested(MAX_DEPTH - 1) + b"}"
    reply = site.post(PREDICT, content=body, headers=JSON)
    assert reply.status_code == 422, reply.text
    # Brackets inside strings, escaped quotes included, are text, not nesting.
    name = '\\"' + "[" * 50 + "{" * 50
    api = site.post("/api/v1/models", json={"name": "flat", "description": name})
    assert api.status_code == 201, api.text
    assert api.json()["description"] == name
