"""What the pages let people do beyond reading: release or quarantine a version, scoped tokens.

A real server on a home where anonymous callers have no role: 'root' is an admin, 'ana' a
viewer. Model ``evil`` starts with a version whose files hold a crafted malicious pickle (only
ever dumped, never loaded), so the scan at registration quarantines it; ``held`` has one an
admin quarantined by hand; ``clean`` has a harmless one. Browsers sign in through the login
form (headless Chromium), scripts with httpx.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from corral import Client
from corral.access import Role
from corral.api.app import create_app
from corral.config import Settings
from corral.wiring import Corral, open_corral
from tests.fixtures.corral import ServerThread

if TYPE_CHECKING:
    from playwright.sync_api import Page

PASSWORD = "correct horse battery"
ADMIN_PASSWORD = "admin password 1"


class _Payload:
    """Pickles as ``os.system(command)``: the shape of every pickle exploit."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


@dataclass
class Site:
    url: str
    wired: Corral
    marker: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("admin-actions")
    marker = tmp / "pwned"
    settings = Settings(home=tmp / "home", anonymous_role="none")
    evil, harmless = tmp / "evil", tmp / "harmless"
    evil.mkdir()
    (evil / "model.bin").write_bytes(pickle.dumps(_Payload(f"touch {marker}")))
    harmless.mkdir()
    (harmless / "README.md").write_text("nothing to run here\n")
    with Client(settings=settings, actor="seeder") as client:
        for name, folder in (("evil", evil), ("held", harmless), ("clean", harmless)):
            client.create_model(name)
            client.register(name, folder)
        client.quarantine_version("held", 1, "seeded: under review")
    wired = open_corral(settings)
    try:
        identity = wired.identity
        identity.create_user("ana", password=PASSWORD)
        identity.grant(Role.VIEWER, user="ana")
        identity.create_user("root", password=ADMIN_PASSWORD)
        identity.grant(Role.ADMIN, user="root")
        with ServerThread(create_app(corral=wired)) as server:
            yield Site(server.url, wired, marker)
    finally:
        wired.close()
    assert not marker.exists(), "the malicious pickle ran"


@pytest.fixture
def http(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url) as client:
        yield client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(http: httpx.Client, name: str, password: str) -> None:
    form = http.get("/login")
    data = {"name": name, "password": password, "csrf": csrf_of(form.text)}
    assert http.post("/login", data=data).status_code == 303


def browser_sign_in(page: Page, site: Site, name: str, password: str, target: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{site.url}/login?next={target}")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site.url}{target}")


def quarantined(site: Site, model: str, number: int) -> bool:
    return site.wired.registry.get_version(model, number).quarantined


# -- release and quarantine from the model page -----------------------------------------------


@pytest.mark.browser
def test_an_admin_releases_a_quarantined_version_with_a_reason_that_is_audited(
    site: Site, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    browser_sign_in(page, site, "root", ADMIN_PASSWORD, "/models/evil")
    row = page.locator('[data-testid="version-row"][data-version="1"]')
    expect(row.get_by_test_id("quarantined")).to_be_visible()
    expect(row.get_by_test_id("quarantine-form")).to_have_count(0)

    form = row.get_by_test_id("release-form")
    form.get_by_label("Reason").fill("reviewed by root: the pickle is a test sample")
    form.get_by_role("button", name="Release").click()

    expect(page).to_have_url(f"{site.url}/models/evil#section-versions")
    expect(row.get_by_test_id("quarantined")).to_have_count(0)
    expect(row.get_by_test_id("release-form")).to_have_count(0)
    expect(row.get_by_test_id("quarantine-form")).to_be_visible()  # and back again if need be
    assert not quarantined(site, "evil", 1)

    events = site.wired.registry.list_audit(action="version.release", target="model:evil").items
    assert [(e.actor, e.target) for e in events] == [("root", "model:evil/version:1")]
    assert events[0].after == {
        "quarantined": False,
        "reason": "reviewed by root: the pickle is a test sample",
    }
    assert not site.marker.exists()
    assert browser_console == []


@pytest.mark.browser
def test_a_blank_reason_is_refused_with_a_message_and_changes_nothing(
    site: Site, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    browser_sign_in(page, site, "root", ADMIN_PASSWORD, "/models/held")
    row = page.locator('[data-testid="version-row"][data-version="1"]')
    form = row.get_by_test_id("release-form")
    form.get_by_label("Reason").fill("   ")  # passes the browser's "required", not Corral
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        form.get_by_role("button", name="Release").click()
    assert answer.value.status == 400

    expect(page.get_by_test_id("form-error")).to_contain_text("needs a reason")
    expect(row.get_by_test_id("quarantined")).to_be_visible()
    assert quarantined(site, "held", 1)
    assert [m for m in browser_console if "400" not in m] == []


@pytest.mark.browser
def test_a_non_admin_sees_no_forms_and_a_forged_post_is_refused(
    site: Site, browser_page: Page, browser_console: list[str], http: httpx.Client
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    browser_sign_in(page, site, "ana", PASSWORD, "/models/held")
    row = page.locator('[data-testid="version-row"][data-version="1"]')
    expect(row.get_by_test_id("quarantined")).to_be_visible()
    expect(page.get_by_test_id("release-form")).to_have_count(0)
    expect(page.get_by_test_id("quarantine-form")).to_have_count(0)
    assert browser_console == []

    # With her own session and its valid CSRF token: the service refuses, not the form.
    sign_in(http, "ana", PASSWORD)
    token = csrf_of(http.get("/account").text)
    for verb, model in (("release", "held"), ("quarantine", "clean")):
        response = http.post(
            f"/models/{model}/versions/1/{verb}", data={"reason": "forged", "csrf": token}
        )
        assert response.status_code == 403, response.text
        assert "Not allowed" in response.text
        assert "admin role" in response.text
    assert quarantined(site, "held", 1)
    assert not quarantined(site, "clean", 1)


def test_an_admin_quarantines_a_version_and_bad_requests_get_400_never_500(
    site: Site, http: httpx.Client
) -> None:
    sign_in(http, "root", ADMIN_PASSWORD)
    page = http.get("/models/clean")
    assert 'data-testid="quarantine-form"' in page.text
    token = csrf_of(page.text)

    for data in ({"csrf": token}, {"reason": "", "csrf": token}, {"reason": " \t", "csrf": token}):
        refused = http.post("/models/clean/versions/1/quarantine", data=data)
        assert refused.status_code == 400
        assert "needs a reason" in refused.text
        assert 'data-testid="form-error"' in refused.text
    assert not quarantined(site, "clean", 1)

    missing = http.post("/models/clean/versions/9/quarantine", data={"reason": "x", "csrf": token})
    assert missing.status_code == 404
    forged = http.post("/models/clean/versions/1/quarantine", data={"reason": "no token"})
    assert forged.status_code == 403
    assert not quarantined(site, "clean", 1)

    done = http.post(
        "/models/clean/versions/1/quarantine", data={"reason": "leaks a key", "csrf": token}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/models/clean#section-versions"
    assert quarantined(site, "clean", 1)
    [event] = site.wired.registry.quarantine_history("clean", 1)
    assert (event.action, event.actor, event.reason) == ("quarantine", "root", "leaks a key")
    assert 'data-testid="release-form"' in http.get("/models/clean").text


# -- scoped, rate-limited tokens on the account page ---------------------------------------------


@pytest.mark.browser
def test_a_user_creates_a_scoped_rate_limited_token_and_sees_its_limits(
    site: Site, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    browser_sign_in(page, site, "ana", PASSWORD, "/account")
    form = page.get_by_test_id("create-token")
    expect(form.get_by_label("Tier")).to_have_count(0)  # only admins pick a tier
    form.get_by_label("Name").fill("dashboards")
    form.get_by_label("Models").fill("held, clean")
    form.get_by_label("Rate limit").fill("50/second")
    form.get_by_label("Rows per day").fill("1000")
    form.get_by_role("button", name="Create token").click()
    secret = page.get_by_test_id("token-secret").inner_text().strip()
    assert secret.startswith("crl_")

    page.goto(f"{site.url}/account")
    row = page.locator('[data-testid="token-row"]', has_text="dashboards")
    expect(row.get_by_test_id("token-models")).to_have_text("clean, held")
    expect(row.get_by_test_id("token-limits")).to_have_text("50/second · 1000 rows/day")
    expect(row.get_by_test_id("token-tier")).to_have_text("bronze")
    assert browser_console == []

    [token] = [t for t in site.wired.identity.list_tokens("ana") if t.name == "dashboards"]
    assert (token.models, token.rate_limit, token.rows_per_day) == (
        ("clean", "held"),
        "50/second",
        1000,
    )
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {secret}"}) as api:
        assert api.get("/api/v1/models/clean").status_code == 200
        assert api.get("/api/v1/models/evil").status_code in (403, 404)  # outside its scope


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"rate_limit": "lots"}, 400, "lots"),
        ({"rows_per_day": "many"}, 400, "not a whole number"),
        ({"rows_per_day": "0"}, 400, "at least 1"),
        ({"models": " , "}, 200, ""),  # no names at all: every model, like an empty field
        ({"tier": "gold"}, 403, "only an admin"),
        ({"tier": "platinum"}, 400, "unknown tier"),
    ],
)
def test_token_fields_are_checked_by_the_service_and_shown_again(
    http: httpx.Client, fields: dict[str, str], status: int, message: str
) -> None:
    sign_in(http, "ana", PASSWORD)
    token = csrf_of(http.get("/account").text)
    data = {"name": "checked", "days": "1", "rate_limit": "5/minute", "csrf": token, **fields}
    response = http.post("/account/tokens", data=data)
    assert response.status_code == status, response.text
    assert message in response.text
    if status != 200:
        assert "crl_" not in response.text
        assert 'value="checked"' in response.text  # the form comes back as it was filled


def test_an_admin_picks_a_tier(site: Site, http: httpx.Client) -> None:
    sign_in(http, "root", ADMIN_PASSWORD)
    page = http.get("/account")
    assert '<select name="tier">' in page.text
    data = {"name": "partner", "tier": "gold", "models": "clean", "csrf": csrf_of(page.text)}
    assert http.post("/account/tokens", data=data).status_code == 200
    [token] = [t for t in site.wired.identity.list_tokens("root") if t.name == "partner"]
    assert (token.tier, token.models) == ("gold", ("clean",))
