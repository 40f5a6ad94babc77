"""The registry's HTML pages: rendered in-process, then clicked through in headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI

from corral.api.app import create_app
from corral.config import Settings
from corral.registry.service import RegistryService
from corral.wiring import Corral, open_corral
from tests.fixtures.corral import ServerThread

if TYPE_CHECKING:
    from playwright.sync_api import Page

SCREENSHOT = Path("/tmp/corral-model-page.png")


@pytest.fixture
def corral(tmp_path: Path) -> Iterator[Corral]:
    wired = open_corral(Settings(home=tmp_path / "home"))
    try:
        yield wired
    finally:
        wired.close()


@pytest.fixture
def svc(corral: Corral) -> RegistryService:
    return corral.registry


@pytest.fixture
def app(corral: Corral) -> FastAPI:
    return create_app(corral=corral)


@pytest.fixture
def web(app: FastAPI) -> Iterator[httpx.Client]:
    # A real server in a thread: an event loop of the test's own would clash with the
    # session's Playwright (its sync API keeps a loop running in this thread).
    with ServerThread(app) as server, httpx.Client(base_url=server.url) as client:
        yield client


def register(svc: RegistryService, model: str, payload: bytes, **metrics: float) -> int:
    upload = svc.begin_upload()
    svc.upload_file(upload, "model.bin", [payload])
    return svc.create_version(model, upload, metrics=metrics, actor="alice").number


def fill(svc: RegistryService) -> None:
    """A small registry: 'churn' with three versions, moved and rolled back aliases."""
    svc.create_model(
        "churn",
        description="Predicts which customers leave next month",
        owner="risk-team",
        task="classification",
        tags={"domain": "retention"},
        actor="alice",
    )
    svc.create_model("fraud", description="Card fraud scores", source="third-party")
    register(svc, "churn", b"v1" * 100, auc=0.81)
    register(svc, "churn", b"v2" * 100, auc=0.84)
    register(svc, "churn", b"v3" * 100, auc=0.86, f1=0.7)
    svc.set_alias("churn", "champion", 1, reason="first release", actor="alice")
    svc.set_alias("churn", "champion", 2, reason="better auc", actor="bob")
    svc.rollback_alias("churn", "champion", reason="v2 drifts on new data", actor="carol")
    svc.create_config("churn", "prod", {"replicas": 2}, actor="alice")
    svc.create_config("churn", "prod", {"replicas": 4, "timeout_ms": 250}, actor="alice")
    svc.set_alias("churn", "challenger", 3, config="prod", actor="bob")
    svc.deprecate_version("churn", 2, "drifts on new data; move to v3", actor="carol")
    svc.create_consumer("billing", "churn", version=2, actor="dave")
    svc.create_consumer("crm", "churn", alias="champion", actor="erin")


def attr(row: str, name: str) -> str:
    """The value of the first ``name`` attribute in a row's HTML."""
    found = re.search(rf'{name}="([^"]*)"', row)
    assert found is not None, f"no {name} in {row}"
    return found[1]


def by(html: str, testid: str, key: str) -> dict[str, str]:
    """The rows with ``data-testid=testid``, by the value of their ``key`` attribute."""
    return {attr(row, key): row for row in rows(html, testid)}


def rows(html: str, testid: str) -> list[str]:
    """The HTML of each table row with ``data-testid=testid``."""
    return re.findall(rf'<tr data-testid="{testid}".*?</tr>', html, flags=re.DOTALL)


# -- in-process --------------------------------------------------------------------------


def test_root_redirects_to_the_model_list(web: httpx.Client) -> None:
    response = web.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/models"


def test_empty_model_list_tells_how_to_register(web: httpx.Client) -> None:
    response = web.get("/models")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-testid="empty"' in response.text
    assert "corral register NAME PATH" in response.text


def test_html_pages_carry_security_headers(web: httpx.Client, svc: RegistryService) -> None:
    svc.create_model("churn")
    for path in ("/models", "/models/churn", "/models/missing"):
        response = web.get(path)
        assert response.headers["content-security-policy"] == "default-src 'self'", path
        assert response.headers["x-content-type-options"] == "nosniff", path


def test_model_list_shows_each_model(web: httpx.Client, svc: RegistryService) -> None:
    fill(svc)
    html = (web.get("/models")).text
    found = rows(html, "model-row")
    assert [attr(row, "data-model") for row in found] == ["churn", "fraud"]
    churn = found[0]
    assert 'href="/models/churn"' in churn
    assert "risk-team" in churn
    assert "classification" in churn
    assert "v3" in churn
    assert "retention" in churn
    assert "third-party" in found[1]


def test_search_filters_the_model_list(web: httpx.Client, svc: RegistryService) -> None:
    fill(svc)
    html = (web.get("/models", params={"q": "fraud"})).text
    assert len(rows(html, "model-row")) == 1
    assert 'value="fraud"' in html
    empty = (web.get("/models", params={"q": "nothing-like-this"})).text
    assert "No model matches" in empty


def test_model_list_pages_past_100_models(web: httpx.Client, svc: RegistryService) -> None:
    for number in range(101):
        svc.create_model(f"m{number:03d}")
    first = (web.get("/models")).text
    assert len(rows(first, "model-row")) == 100
    assert 'href="?page=2"' in first
    second = (web.get("/models", params={"page": "2"})).text
    assert len(rows(second, "model-row")) == 1
    assert 'data-model="m100"' in second
    assert 'href="?page=1"' in second
    beyond = (web.get("/models", params={"page": "9"})).text
    assert 'data-model="m100"' in beyond
    for nonsense in ("x", "-3", "9" * 40):
        response = web.get("/models", params={"page": nonsense})
        assert response.status_code == 200, nonsense
        assert rows(response.text, "model-row"), nonsense


def test_user_text_is_escaped(web: httpx.Client, svc: RegistryService) -> None:
    evil = "<script>alert('x')</script>"
    svc.create_model("evil", description=evil, tags={"note": evil}, owner="<b>me</b>")
    for path in ("/models", "/models/evil", "/models?q=%3Cscript%3E"):
        html = (web.get(path)).text
        assert "<script>" not in html, path
        assert "<b>me</b>" not in html, path
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in (web.get("/models")).text


def test_model_page_shows_versions_aliases_history_consumers_and_configs(
    web: httpx.Client, svc: RegistryService
) -> None:
    fill(svc)
    response = web.get("/models/churn")
    assert response.status_code == 200
    html = response.text
    for table in ("versions", "aliases", "alias-history", "consumers", "configs"):
        assert f'id="{table}"' in html, table

    versions = rows(html, "version-row")
    assert [attr(row, "data-version") for row in versions] == ["3", "2", "1"]
    assert "deprecated" in versions[1]
    assert "drifts on new data; move to v3" in versions[1]
    assert "auc" in versions[0]
    assert "0.86" in versions[0]
    assert "alice" in versions[0]

    aliases = by(html, "alias-row", "data-alias")
    assert 'data-version="1"' in aliases["champion"]
    assert 'data-version="3"' in aliases["challenger"]
    assert "prod" in aliases["challenger"]
    assert "rev</span> 2" in aliases["challenger"]

    events = rows(html, "alias-event")
    assert len(events) == 4
    assert 'data-action="set"' in events[0]  # challenger, newest first
    rollback = events[1]
    assert 'data-action="rollback"' in rollback
    assert 'data-testid="from-version" data-version="2"' in rollback
    assert 'data-testid="to-version" data-version="1"' in rollback
    assert "carol" in rollback
    assert "v2 drifts on new data" in rollback

    consumers = by(html, "consumer-row", "data-consumer")
    assert "pinned" in consumers["billing"]
    assert "resolves to deprecated v2" in consumers["billing"]
    assert "follows" in consumers["crm"]
    assert 'data-testid="resolves-to" data-version="1"' in consumers["crm"]
    assert "consumer-warning" not in consumers["crm"]

    (config,) = rows(html, "config-row")
    assert 'data-config="prod"' in config
    assert "2 revisions" in config
    assert "timeout_ms" in config


def test_consumer_of_a_deleted_alias_says_it_does_not_resolve(
    web: httpx.Client, svc: RegistryService
) -> None:
    fill(svc)
    svc.create_consumer("batch", "churn", alias="challenger")
    svc.delete_alias("churn", "challenger", reason="experiment over")
    html = (web.get("/models/churn")).text
    consumers = by(html, "consumer-row", "data-consumer")
    assert "does not resolve" in consumers["batch"]
    assert 'data-action="delete"' in rows(html, "alias-event")[0]


def test_model_without_versions_shows_empty_sections(
    web: httpx.Client, svc: RegistryService
) -> None:
    svc.create_model("fresh")
    html = (web.get("/models/fresh")).text
    for empty in ("versions-empty", "aliases-empty", "history-empty", "consumers-empty"):
        assert f'data-testid="{empty}"' in html, empty
    assert "corral register fresh PATH" in html


def test_unknown_model_is_an_html_404_naming_it(web: httpx.Client) -> None:
    response = web.get("/models/no-such-model")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "model &#39;no-such-model&#39; does not exist" in response.text
    assert "corral register no-such-model PATH" in response.text


def test_unknown_model_name_is_escaped_on_the_404_page(web: httpx.Client) -> None:
    response = web.get("/models/%3Cscript%3Ealert(1)")
    assert response.status_code == 404
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text


def test_api_stays_json_and_pages_stay_out_of_the_schema(
    web: httpx.Client,
) -> None:
    missing = web.get("/api/v1/models/no-such-model")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    paths = (web.get("/openapi.json")).json()["paths"]
    assert "/models" not in paths
    assert "/models/{name}" not in paths
    assert "/" not in paths


def test_stylesheet_is_served_locally(web: httpx.Client) -> None:
    page = (web.get("/models")).text
    assert "http://" not in page.replace("http://corral.test", "")
    assert "https://" not in page
    css = web.get("/static/corral.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers["x-content-type-options"] == "nosniff"
    assert "@import" not in css.text
    assert "url(http" not in css.text


# -- in a real browser -------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    svc: RegistryService


@pytest.fixture
def live_server(app: FastAPI, svc: RegistryService) -> Iterator[LiveServer]:
    """The app on a real uvicorn on 127.0.0.1 (a free port), in a background thread."""
    with ServerThread(app) as server:
        yield LiveServer(server.url, svc)


@pytest.mark.browser
def test_browser_follows_a_model_to_its_rolled_back_alias(
    live_server: LiveServer, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    fill(live_server.svc)
    page = browser_page
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/models")
    expect(page.locator('#models [data-testid="model-row"]')).to_have_count(2)
    # The stylesheet loaded despite the strict CSP.
    assert page.locator(".topbar").evaluate("e => getComputedStyle(e).display") == "flex"

    page.locator("#models").get_by_role("link", name="churn", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/models/churn")
    expect(page.get_by_test_id("model-name")).to_have_text("churn")

    newest = page.locator('#alias-history [data-testid="alias-event"]')
    expect(newest).to_have_count(4)
    rollback = newest.filter(has=page.locator('[data-testid="action"]', has_text="rollback"))
    expect(rollback).to_have_count(1)
    expect(rollback.get_by_test_id("alias")).to_have_text("champion")
    expect(rollback.get_by_test_id("from-version")).to_have_text("v2")
    expect(rollback.get_by_test_id("to-version")).to_have_text("v1")
    expect(rollback.get_by_test_id("who")).to_have_text("carol")

    champion = page.locator('#aliases [data-testid="alias-row"][data-alias="champion"]')
    expect(champion.get_by_test_id("version")).to_contain_text("v1")

    billing = page.locator('#consumers [data-testid="consumer-row"][data-consumer="billing"]')
    expect(billing.get_by_test_id("binding")).to_contain_text("pinned")
    expect(billing.get_by_test_id("resolves-to")).to_contain_text("v2")
    expect(billing.get_by_test_id("consumer-warning")).to_contain_text("deprecated")

    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert browser_console == []


@pytest.mark.browser
def test_browser_searches_and_lands_on_the_404_page(
    live_server: LiveServer, browser_page: Page
) -> None:
    from playwright.sync_api import expect

    fill(live_server.svc)
    page = browser_page
    page.goto(f"{live_server.url}/models")
    page.get_by_role("searchbox", name="Search models").fill("card fraud")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"/models\?q=card\+fraud$"))
    expect(page.locator('#models [data-testid="model-row"]')).to_have_count(1)
    expect(page.locator('#models [data-testid="model-row"]')).to_have_attribute(
        "data-model", "fraud"
    )

    response = page.goto(f"{live_server.url}/models/ghost")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_test_id("error-message")).to_have_text("model 'ghost' does not exist")
    page.get_by_role("link", name="Back to all models").click()
    expect(page).to_have_url(f"{live_server.url}/models")
