"""The API docs work in a browser with no way out: Swagger UI and ReDoc come from the server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from corral.config import Settings
from tests.fixtures.corral import ServerThread

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("api-docs") / "home"
    with ServerThread(Settings(home=home, monitor_evaluate_seconds=0)) as server:
        yield server.url


def _offline(page: Page, url: str) -> list[str]:
    """Refuse every request that does not go to the server under test; list them."""
    away: list[str] = []

    def route(route: Route) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            away.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    return away


def test_swagger_ui_renders_the_api_offline(
    url: str, browser_page: Page, browser_console: list[str]
) -> None:
    away = _offline(browser_page, url)
    browser_page.goto(f"{url}/docs")
    browser_page.get_by_text("/api/v1/models/{name}/predict").first.wait_for()
    assert away == []
    assert browser_console == []


def test_redoc_renders_the_api_offline(
    url: str, browser_page: Page, browser_console: list[str]
) -> None:
    away = _offline(browser_page, url)
    browser_page.goto(f"{url}/redoc")
    browser_page.locator("h1", has_text="Corral").first.wait_for()
    browser_page.get_by_text("/api/v1/models/{name}/predict").first.wait_for(state="attached")
    assert away == []
    # ReDoc's "powered by" footer wants a logo from its CDN; the policy keeps it from going.
    blocked = [m for m in browser_console if "Content Security Policy" in m]
    assert all("cdn.redoc.ly/redoc/logo-mini.svg" in m for m in blocked), blocked
