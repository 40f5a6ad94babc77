"""Every response says `X-Content-Type-Options: nosniff`, every HTML page carries a
Content-Security-Policy, and pages escape what users wrote. A real server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral import Client
from corral.config import Settings
from tests.fixtures.corral import ServerThread

EVIL = '<script>alert("owned")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("headers")
    settings = Settings(home=tmp / "home", monitor_evaluate_seconds=0)
    (tmp / "model.bin").write_bytes(b"weights")
    with Client(settings=settings, actor="tester") as client:
        client.register("evil", tmp / "model.bin", description=EVIL)
        client.update_model("evil", description=EVIL)
    with ServerThread(settings) as server, httpx.Client(base_url=server.url) as http:
        yield http


PAGES = ["/models", "/models/evil", "/models/evil/monitoring", "/serving", "/monitoring"]
PAGES += ["/audit", "/models/ghost", "/docs", "/redoc"]


@pytest.mark.parametrize("path", PAGES)
def test_every_html_page_carries_a_content_security_policy_and_nosniff(
    http: httpx.Client, path: str
) -> None:
    reply = http.get(path)
    assert reply.headers["content-type"].startswith("text/html")
    assert reply.headers["x-content-type-options"] == "nosniff"
    policy = reply.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert len(reply.headers.get_list("content-security-policy")) == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/models", None),
        ("GET", "/api/v1/models/ghost", None),
        ("GET", "/api/v1/nowhere", None),
        ("GET", "/openapi.json", None),
        ("GET", "/static/corral.css", None),
        ("GET", "/metrics", None),
        ("POST", "/api/v1/webhooks", {"url": "http://127.0.0.1/"}),
        ("POST", "/api/v1/models/evil/predict", {"records": [{"x": 1}]}),
        ("POST", "/api/v1/models/ghost/predict", {"records": [{"x": 1}]}),
        ("POST", "/v2/models/evil/infer", {"inputs": []}),
        ("POST", "/v2/models/ghost/versions/1/infer", b"not json"),
    ],
)
def test_every_response_says_nosniff_also_errors_and_predictions(
    http: httpx.Client, method: str, path: str, body: object
) -> None:
    if isinstance(body, bytes):
        reply = http.request(method, path, content=body)
    else:
        reply = http.request(method, path, json=body)
    assert reply.headers.get_list("x-content-type-options") == ["nosniff"]
    if not reply.headers.get("content-type", "").startswith("text/html"):
        assert "content-security-policy" not in reply.headers


def test_pages_escape_a_model_description_holding_a_script(http: httpx.Client) -> None:
    page = http.get("/models/evil").text
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in page
    listing = http.get("/models").text
    assert "<script>alert" not in listing


def test_static_files_are_not_sniffed(http: httpx.Client, tmp_path: Path) -> None:
    reply = http.get("/static/corral.js")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert reply.headers.get_list("x-content-type-options") == ["nosniff"]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_load_everything_from_this_server(http: httpx.Client, path: str) -> None:
    # Offline machines must get working API docs: no CDN, no web fonts, nothing fetched away.
    import re

    page = http.get(path)
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+)['"]""", page.text)
    assert assets, page.text[:500]
    for asset in assets:
        assert not re.match(r"(?i)(https?:)?//", asset), asset
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts
    for asset in scripts + [a for a in assets if a.endswith(".css")]:
        reply = http.get(asset)
        assert reply.status_code == 200, asset
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert len(reply.content) > 10_000, asset
    policy = page.headers["content-security-policy"]
    assert "http" not in policy, policy  # nothing allowed from another origin
