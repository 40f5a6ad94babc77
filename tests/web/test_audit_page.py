"""The audit page over HTTP: a real server, its events and filters, server-rendered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest

from corral.config import Settings
from tests.fixtures.corral import ServerThread

if TYPE_CHECKING:
    from playwright.sync_api import Page


@dataclass
class Site:
    http: httpx.Client


@pytest.fixture
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("audit") / "home"
    with (
        ServerThread(Settings(home=home)) as server,
        httpx.Client(base_url=server.url, headers={"X-Corral-Actor": "ana"}) as http,
    ):
        http.post("/api/v1/models", json={"name": "churn"}).raise_for_status()
        http.post("/api/v1/models", json={"name": "fraud"}).raise_for_status()
        http.patch("/api/v1/models/churn", json={"description": "<b>bold</b>"}).raise_for_status()
        yield Site(http)


def _rows(html: str) -> int:
    return html.count('data-testid="audit-row"')


def test_the_audit_page_lists_events_newest_first_with_their_change(site: Site) -> None:
    response = site.http.get("/audit")

    assert response.status_code == 200
    html = response.text
    assert _rows(html) == 3
    assert html.index("model.update") < html.index("model.create")
    assert "ana" in html
    assert "127.0.0.1" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html  # before/after are escaped, never markup
    assert "<b>bold</b>" not in html
    assert 'href="/audit" aria-current="page"' in html
    assert response.headers["Content-Security-Policy"] == "default-src 'self'"
    assert "<script>" not in html


def test_the_audit_page_filters_by_action_target_and_actor(site: Site) -> None:
    assert _rows(site.http.get("/audit", params={"action": "model.create"}).text) == 2
    assert _rows(site.http.get("/audit", params={"target": "model:fraud"}).text) == 1
    none = site.http.get("/audit", params={"actor": "bob"}).text
    assert _rows(none) == 0
    assert "No event matches these filters" in none
    assert _rows(site.http.get("/audit", params={"since": "2000-01-01"}).text) == 3


def test_a_malformed_since_is_a_400_page_not_a_crash(site: Site) -> None:
    response = site.http.get("/audit", params={"since": "last tuesday"})

    assert response.status_code == 400
    assert "last tuesday" in response.text


def test_every_page_links_to_the_audit_log(site: Site) -> None:
    assert 'href="/audit"' in site.http.get("/models").text


@pytest.mark.browser
def test_browser_opens_the_audit_page_from_the_nav_and_filters_it(
    site: Site, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    base = str(site.http.base_url).rstrip("/")
    page.goto(f"{base}/models")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect(page).to_have_url(f"{base}/audit")
    expect(page.locator('#audit [data-testid="audit-row"]')).to_have_count(3)

    page.locator("#target").fill("model:fraud")
    page.get_by_role("button", name="Filter").click()

    rows = page.locator('#audit [data-testid="audit-row"]')
    expect(rows).to_have_count(1)
    expect(rows.get_by_test_id("action")).to_have_text("model.create")
    expect(rows.get_by_test_id("actor")).to_have_text("ana")
    page.screenshot(path="/tmp/corral-audit-page.png", full_page=True)
    assert browser_console == []
