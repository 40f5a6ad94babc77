"""The web login on a real server: sessions in cookies, CSRF tokens, the account pages.

Users are made through the real identity service on a home where anonymous callers have no
role; browsers sign in through the login form (headless Chromium), scripts with httpx.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from corral.access import Role
from corral.api.app import create_app
from corral.config import Settings
from corral.wiring import Corral, open_corral
from tests.fixtures.corral import ServerThread

if TYPE_CHECKING:
    from playwright.sync_api import Page

PASSWORD = "correct horse battery"
ADMIN_PASSWORD = "admin password 1"
SCREENSHOT = Path("/tmp/corral-account-page.png")


@dataclass
class Site:
    url: str
    wired: Corral


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A server without anonymous access; 'ana' may read everything, 'root' is an admin."""
    home = tmp_path_factory.mktemp("login") / "home"
    wired = open_corral(Settings(home=home, anonymous_role="none"))
    try:
        identity = wired.identity
        identity.create_user("ana", password=PASSWORD)
        identity.grant(Role.VIEWER, user="ana")
        identity.create_user("root", password=ADMIN_PASSWORD)
        identity.grant(Role.ADMIN, user="root")
        wired.registry.create_model("churn", description="Who leaves next month")
        with ServerThread(create_app(corral=wired)) as server:
            yield Site(server.url, wired)
    finally:
        wired.close()


@pytest.fixture
def http(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url) as client:
        yield client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(http: httpx.Client, name: str = "ana", password: str = PASSWORD) -> httpx.Response:
    form = http.get("/login")
    assert form.status_code == 200
    data = {"name": name, "password": password, "csrf": csrf_of(form.text), "next": "/models"}
    response = http.post("/login", data=data)
    assert response.status_code == 303, response.text
    return response


def api_tokens(site: Site, user: str = "ana") -> list[str]:
    return [t.id for t in site.wired.identity.list_tokens(user) if t.kind == "api"]


# -- in the browser ----------------------------------------------------------------------


@pytest.mark.browser
def test_browser_signs_in_with_an_httponly_lax_cookie_after_a_wrong_password(
    site: Site, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{site.url}/models")
    expect(page).to_have_url(f"{site.url}/login?next=%2Fmodels")
    expect(page.get_by_test_id("sign-in")).to_have_count(0)

    page.get_by_label("User name").fill("ana")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("login-error")).to_have_text("wrong user name or password")
    assert not [c for c in page.context.cookies() if c["name"] == "corral_session"]

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site.url}/models")
    expect(page.get_by_test_id("model-row")).to_have_count(1)
    expect(page.get_by_test_id("signed-in-as")).to_have_text("ana")

    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["corral_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert session["path"] == "/"
    assert session["expires"] > 0  # Max-Age: the session ends after session_hours
    assert "corral_csrf" not in cookies  # the login form's token went with the login

    # The 401 of the wrong password is the only complaint Chromium may log.
    assert [m for m in browser_console if "401" not in m] == []
    assert all(url.startswith(site.url + "/") for url in requested), requested


@pytest.mark.browser
def test_browser_creates_a_token_shown_once_that_works_until_revoked(
    site: Site, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{site.url}/login")
    page.get_by_label("User name").fill("ana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site.url}/models")

    page.get_by_test_id("signed-in-as").click()
    expect(page).to_have_url(f"{site.url}/account")
    expect(page.get_by_test_id("global-role")).to_have_text("viewer")
    form = page.get_by_test_id("create-token")
    form.get_by_label("Name").fill("notebook")
    form.get_by_label("Expires after").fill("7")
    form.get_by_role("button", name="Create token").click()

    secret = page.get_by_test_id("token-secret").inner_text().strip()
    assert secret.startswith("crl_")
    expect(page.get_by_role("button", name="Copy")).to_be_visible()  # corral.js ran (CSP)
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {secret}"}) as api:
        assert api.get("/api/v1/models").status_code == 200

        page.goto(f"{site.url}/account")
        row = page.locator('[data-testid="token-row"]', has_text="notebook")
        expect(row.get_by_test_id("token-state")).to_have_text("active")
        assert secret not in page.content()  # shown once, never again
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        row.get_by_role("button", name="Revoke").click()
        expect(page).to_have_url(f"{site.url}/account")
        expect(row.get_by_test_id("token-state")).to_have_text("revoked")
        refused = api.get("/api/v1/models")
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]

    assert browser_console == []
    assert all(url.startswith(site.url + "/") for url in requested), requested


@pytest.mark.browser
def test_browser_sign_out_ends_the_session_for_everyone_holding_the_cookie(
    site: Site, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    page.goto(f"{site.url}/login?next=/models/churn")
    page.get_by_label("User name").fill("ana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site.url}/models/churn")
    cookie = next(c for c in page.context.cookies() if c["name"] == "corral_session")["value"]

    with httpx.Client(base_url=site.url, cookies={"corral_session": cookie}) as stolen:
        assert stolen.get("/api/v1/models").status_code == 200
        page.get_by_test_id("sign-out").click()
        expect(page).to_have_url(f"{site.url}/login")
        expect(page.get_by_test_id("signed-in-as")).to_have_count(0)
        assert not [c for c in page.context.cookies() if c["name"] == "corral_session"]
        assert stolen.get("/api/v1/models").status_code == 401
        # A page with the old cookie treats the visitor as signed out: off to the login.
        assert stolen.get("/account").headers["location"] == "/login?next=%2Faccount"

    page.goto(f"{site.url}/account")
    expect(page).to_have_url(f"{site.url}/login?next=%2Faccount")
    assert browser_console == []


# -- over HTTP ---------------------------------------------------------------------------


def test_login_form_sets_a_strict_httponly_csrf_cookie(http: httpx.Client) -> None:
    response = http.get("/login")
    header = response.headers["set-cookie"]
    assert header.startswith("corral_csrf=")
    assert "HttpOnly" in header
    assert "SameSite=strict" in header or "SameSite=Strict" in header
    assert http.cookies["corral_csrf"] == csrf_of(response.text)
    assert response.headers["cache-control"] == "no-store"


def test_login_without_the_form_token_is_refused(http: httpx.Client) -> None:
    http.get("/login")
    data = {"name": "ana", "password": PASSWORD, "csrf": "forged"}
    response = http.post("/login", data=data)
    assert response.status_code == 403
    assert "security token" in response.text
    assert "corral_session" not in response.headers.get("set-cookie", "")


def test_wrong_password_gets_401_and_the_form_again(http: httpx.Client) -> None:
    form = http.get("/login")
    data = {"name": "ana", "password": "nope nope", "csrf": csrf_of(form.text)}
    response = http.post("/login", data=data)
    assert response.status_code == 401
    assert "wrong user name or password" in response.text
    assert 'value="ana"' in response.text
    assert "corral_session" not in http.cookies


def test_session_cookie_attributes(http: httpx.Client, site: Site) -> None:
    response = sign_in(http)
    header = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and "session" in v
    )
    hours = site.wired.settings.session_hours
    assert "HttpOnly" in header
    assert "samesite=lax" in header.lower()
    assert "Path=/" in header
    assert f"Max-Age={int(hours * 3600)}" in header
    assert "Secure" not in header  # plain http on loopback; https adds it


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "/\t/evil.example",
        "javascript:1",
    ],
)
def test_login_never_redirects_off_site(http: httpx.Client, target: str) -> None:
    form = http.get("/login", params={"next": target})
    data = {"name": "ana", "password": PASSWORD, "csrf": csrf_of(form.text), "next": target}
    response = http.post("/login", data=data)
    assert response.status_code == 303
    assert response.headers["location"] == "/models"


def test_login_follows_a_local_next(http: httpx.Client) -> None:
    form = http.get("/login")
    target = "/models/churn?vpage=1"
    data = {"name": "ana", "password": PASSWORD, "csrf": csrf_of(form.text), "next": target}
    assert http.post("/login", data=data).headers["location"] == target


def test_logout_without_or_with_a_wrong_token_changes_nothing(http: httpx.Client) -> None:
    sign_in(http)
    assert http.post("/logout").status_code == 403
    assert http.post("/logout", data={"csrf": "0" * 64}).status_code == 403
    assert http.get("/account").status_code == 200  # still signed in
    assert http.get("/api/v1/models").status_code == 200

    response = http.post("/logout", data={"csrf": csrf_of(http.get("/account").text)})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert http.get("/api/v1/models").status_code == 401


def test_token_forms_refuse_missing_or_wrong_csrf(http: httpx.Client, site: Site) -> None:
    sign_in(http)
    before = api_tokens(site)
    assert http.post("/account/tokens", data={"name": "sneaky"}).status_code == 403
    forged = {"name": "sneaky", "csrf": "x" * 64}
    response = http.post("/account/tokens", data=forged)
    assert response.status_code == 403
    assert "security token" in response.text
    assert api_tokens(site) == before


def test_a_cross_site_post_is_refused_even_with_the_right_token(
    http: httpx.Client, site: Site
) -> None:
    sign_in(http)
    token = csrf_of(http.get("/account").text)
    before = api_tokens(site)
    response = http.post(
        "/account/tokens",
        data={"name": "cross", "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "another site" in response.text
    assert api_tokens(site) == before

    same_site = http.post(
        "/account/tokens", data={"name": "same", "csrf": token}, headers={"Origin": site.url}
    )
    assert same_site.status_code == 200
    assert len(api_tokens(site)) == len(before) + 1


def test_the_csrf_token_of_one_session_does_not_work_in_another(
    site: Site, http: httpx.Client
) -> None:
    sign_in(http)
    token = csrf_of(http.get("/account").text)
    with httpx.Client(base_url=site.url) as other:
        sign_in(other)
        assert other.post("/account/tokens", data={"name": "x", "csrf": token}).status_code == 403


def test_account_shows_no_secret_and_token_validation_errors(http: httpx.Client) -> None:
    sign_in(http)
    token = csrf_of(http.get("/account").text)
    response = http.post("/account/tokens", data={"name": "bad", "days": "0", "csrf": token})
    assert response.status_code == 400
    assert "between 1 and 3650 days" in response.text
    assert "crl_" not in response.text


def test_pages_send_anonymous_visitors_to_the_login(http: httpx.Client) -> None:
    for path, location in [
        ("/models", "/login?next=%2Fmodels"),
        ("/models/churn?vpage=2", "/login?next=%2Fmodels%2Fchurn%3Fvpage%3D2"),
        ("/account", "/login?next=%2Faccount"),
    ]:
        response = http.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == location


def test_users_page_is_refused_to_non_admins(http: httpx.Client) -> None:
    sign_in(http)
    response = http.get("/admin/users")
    assert response.status_code == 403
    assert "Not allowed" in response.text
    assert 'data-testid="error-message"' in response.text


def test_an_admin_creates_a_user_and_grants_a_role(site: Site, http: httpx.Client) -> None:
    sign_in(http, "root", ADMIN_PASSWORD)
    page = http.get("/admin/users")
    assert page.status_code == 200
    assert 'data-user="ana"' in page.text
    token = csrf_of(page.text)
    created = http.post(
        "/admin/users", data={"name": "bea", "password": "bea password", "csrf": token}
    )
    assert created.status_code == 303
    granted = http.post(
        "/admin/grants",
        data={"kind": "user", "subject": "bea", "role": "viewer", "model": "churn", "csrf": token},
    )
    assert granted.status_code == 303
    listing = http.get("/admin/users").text
    assert 'data-user="bea"' in listing
    assert [(g.role, g.model) for g in site.wired.identity.list_grants(subject="bea")] == [
        (Role.VIEWER, "churn")
    ]
    with httpx.Client(base_url=site.url) as bea:
        sign_in(bea, "bea", "bea password")
        assert bea.get("/models/churn").status_code == 200

    forged = http.post("/admin/users", data={"name": "eve", "password": "eve password"})
    assert forged.status_code == 403
    assert "eve" not in [u.name for u in site.wired.identity.list_users()]
