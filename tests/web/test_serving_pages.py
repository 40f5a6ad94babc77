"""The Serving section of the model page and the /serving page, on a real server.

Models are real scikit-learn classifiers served by a real uvicorn; predictions go over
HTTP; pages are read over HTTP and clicked through in headless Chromium.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from corral import Client
from corral.config import Settings
from corral.registry.service import RegistryService
from corral.serving.traffic import bucket
from corral.wiring import open_corral
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import (
    FEATURES,
    example_records,
    register_classifiers,
    save_classifier,
    training_data,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

CANARY_PERCENT = 10
SCREENSHOT = Path("/tmp/corral-serving-page.png")


@dataclass
class Site:
    url: str
    settings: Settings
    client: Client
    http: httpx.Client


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """Model 'clf' (v1 champion with a 10 % canary to v2, v2), two consumers, a server."""
    settings = Settings(home=tmp_path / "home", route_poll_seconds=0.05)
    with Client(settings=settings, actor="tester") as client:
        register_classifiers(client, tmp_path)
        canary = {"traffic": {"canary": {"version": 2, "percent": CANARY_PERCENT}}}
        client.create_config("clf", "rollout", {**canary, "batching": {"max_wait_ms": 5}})
        client.set_alias("clf", "champion", 1, config="rollout", reason="canary v2")
        client.create_consumer("billing", "clf", alias="champion")
        client.create_consumer("audit", "clf", version=2)
        with ServerThread(settings) as server, httpx.Client(base_url=server.url) as http:
            yield Site(server.url, settings, client, http)


def key_on(canary: bool) -> str:
    """A request key the sticky split sends to the canary (or keeps off it)."""
    for number in range(1000):
        key = f"user-{number}"
        if (bucket(key) < CANARY_PERCENT) == canary:
            return key
    raise AssertionError("no key found")


def records(rows: int) -> list[dict[str, float]]:
    features, _ = training_data(seed=1, rows=rows)
    return example_records(features)


def rows(html: str, testid: str) -> dict[str, str]:
    """Table rows with ``data-testid=testid`` by their first data attribute's value."""
    found = re.findall(rf'<tr data-testid="{testid}" data-[a-z]+="([^"]*)".*?</tr>', html, re.S)
    whole = re.findall(rf'<tr data-testid="{testid}".*?</tr>', html, re.S)
    return dict(zip(found, whole, strict=True))


def run_curl(command: str) -> httpx.Response:
    """Do what the shell would with a curl line from the page: POST its -d body, its -H headers."""
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:2] == ["curl", "-s"], command
    url, headers, body = words[2], {}, None
    options = iter(words[3:])
    for option in options:
        value = next(options)
        if option == "-H":
            name, _, text = value.partition(": ")
            headers[name] = text
        else:
            assert option == "-d", command
            body = value
    assert body is not None, command
    return httpx.post(url, content=body.encode(), headers=headers)


# -- in a real browser -------------------------------------------------------------------


@pytest.mark.browser
def test_model_page_explains_the_canary_and_its_curl_examples_answer(
    site: Site, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    page.goto(f"{site.url}/models/clf")
    serving = page.locator("#section-serving")
    expect(serving.get_by_test_id("serving-default")).to_contain_text(
        "the champion alias, version 1"
    )

    champion = page.locator('#serving-routes [data-testid="route-row"][data-alias="champion"]')
    expect(champion.get_by_test_id("version")).to_have_text("v1")
    expect(champion.get_by_test_id("config")).to_have_text("rollout rev 1")
    how = champion.get_by_test_id("deployment")
    expect(how).to_contain_text("Canary: 10 % to version 2, 90 % to version 1")
    expect(how).to_contain_text("up to 1,024 rows, waiting at most 5 ms")
    expect(how).to_contain_text("Max rows: 10,000 per request")
    expect(how).to_contain_text("Missing values: refused")
    expect(champion.get_by_test_id("loaded")).to_have_text("loads on first request")

    billing = page.locator('#serving-consumers [data-consumer="billing"]')
    expect(billing.get_by_test_id("binding")).to_have_text("follows alias 'champion'")
    expect(billing.get_by_test_id("version")).to_have_text("v1")
    expect(billing.get_by_test_id("deployment")).to_contain_text("10 % to version 2")
    audit = page.locator('#serving-consumers [data-consumer="audit"]')
    expect(audit.get_by_test_id("binding")).to_have_text("pinned to version 2")
    expect(audit.get_by_test_id("config")).to_have_text("none (defaults)")
    expect(audit.get_by_test_id("deployment")).not_to_contain_text("Canary")

    examples = page.locator('[data-testid="examples"][data-alias="champion"]')
    expect(examples).to_have_attribute("open", "")
    expect(examples).to_contain_text("values from the first row of version 1's")
    predict = examples.get_by_test_id("curl-predict")
    infer = examples.get_by_test_id("curl-infer")
    for name in FEATURES:
        expect(predict).to_contain_text(f'"{name}": ')
        expect(infer).to_contain_text(f'"name": "{name}"')

    # Copied from the page and run, both examples answer.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    wrap = examples.locator(".copy-wrap", has=page.get_by_test_id("curl-predict"))
    copy = wrap.locator("button.copy")
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_attribute("data-state", "copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == predict.text_content()
    answer = run_curl(copied)
    assert answer.status_code == 200, answer.text
    assert answer.json()["alias"] == "champion"
    assert answer.json()["version"] in (1, 2)
    oip = run_curl(infer.text_content() or "")
    assert oip.status_code == 200, oip.text
    assert oip.json()["model_version"] in ("1", "2")

    # Viewing the page loaded nothing; a request to the champion did.
    body = {"key": key_on(canary=False), "inputs": records(1)}
    site.http.post("/api/v1/models/clf/predict", json=body)
    page.reload()
    expect(champion.get_by_test_id("loaded")).to_have_text("loaded")
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert browser_console == []


@pytest.mark.browser
def test_serving_page_shows_loaded_versions_and_request_counts(
    site: Site, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    page.goto(f"{site.url}/serving")
    expect(page.get_by_test_id("loaded-empty")).to_be_visible()
    expect(page.get_by_test_id("traffic-empty")).to_be_visible()

    stay, move = key_on(canary=False), key_on(canary=True)
    for count in (1, 2, 3):
        body = {"alias": "champion", "key": stay, "inputs": records(count)}
        response = site.http.post("/api/v1/models/clf/predict", json=body)
        assert response.json()["version"] == 1
    tensors = [{"name": name, "shape": [1], "datatype": "FP64", "data": [0.5]} for name in FEATURES]
    oip = {"inputs": tensors, "parameters": {"key": move}}
    response = site.http.post("/v2/models/clf/versions/champion/infer", json=oip)
    assert response.json()["model_version"] == "2"
    bad = site.http.post("/api/v1/models/clf/predict", json={"version": 1, "inputs": [{"x": 1}]})
    assert bad.status_code == 422
    assert site.http.post("/api/v1/models/ghost/predict", json={"inputs": [[1]]}).status_code == 404
    # Version 1 again: it becomes the most recently used.
    site.http.post("/api/v1/models/clf/predict", json={"version": 1, "inputs": records(1)})

    page.goto(f"{site.url}/models")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Serving").click()
    expect(page).to_have_url(f"{site.url}/serving")
    nav = page.get_by_role("navigation", name="Main").get_by_role("link", name="Serving")
    expect(nav).to_have_attribute("aria-current", "page")

    loaded = page.locator('#loaded [data-testid="loaded-row"]')
    expect(loaded).to_have_count(2)
    expect(loaded.nth(0)).to_have_attribute("data-version", "1")
    expect(loaded.nth(1)).to_have_attribute("data-version", "2")
    expect(loaded.nth(1).get_by_test_id("recency")).to_contain_text("next to evict")
    expect(page.get_by_test_id("cache-entries")).to_have_text("2")
    expect(page.get_by_test_id("cache-misses")).to_have_text("2")
    expect(page.get_by_test_id("cache-use")).to_contain_text("of 2.0 GiB")

    v1 = page.locator('#traffic [data-testid="traffic-row"][data-model="clf"][data-version="1"]')
    expect(v1.get_by_test_id("requests")).to_have_text("5")
    expect(v1.get_by_test_id("errors")).to_contain_text("1")
    expect(v1.get_by_test_id("errors")).to_contain_text("invalid_input 1")
    expect(v1.get_by_test_id("rows")).to_have_text("7")
    expect(v1.get_by_test_id("latency")).to_contain_text(" ms")
    v2 = page.locator('#traffic [data-testid="traffic-row"][data-model="clf"][data-version="2"]')
    expect(v2.get_by_test_id("requests")).to_have_text("1")
    expect(v2.get_by_test_id("canary")).to_have_text("1")
    unrouted = page.locator('#traffic [data-testid="traffic-row"][data-model=""]')
    expect(unrouted.get_by_test_id("model")).to_have_text("not routed")
    expect(unrouted.get_by_test_id("errors")).to_contain_text("not_found 1")

    page.screenshot(path="/tmp/corral-serving-status.png", full_page=True)
    loaded.nth(0).get_by_role("link", name="clf").click()
    expect(page).to_have_url(f"{site.url}/models/clf#section-serving")
    assert browser_console == []


@pytest.mark.browser
def test_unknown_model_is_a_404_page_not_a_server_error(
    site: Site, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    response = browser_page.goto(f"{site.url}/models/ghost")
    assert response is not None
    assert response.status == 404
    expect(browser_page.get_by_test_id("error-message")).to_have_text(
        "model 'ghost' does not exist"
    )
    assert [m for m in browser_console if "404" not in m] == []


# -- over HTTP -----------------------------------------------------------------------------


def test_invalid_config_and_unresolvable_targets_show_their_error_not_a_500(
    site: Site, tmp_path: Path
) -> None:
    # A config written before configs were checked: serving refuses it, the page explains.
    wired = open_corral(site.settings)
    try:
        unchecked = RegistryService(wired.registry.store, wired.registry.artifacts)
        unchecked.create_config("clf", "broken", {"batching": {"enabled": "yes"}})
        unchecked.set_alias("clf", "challenger", 2, config="broken")
        traffic = {"traffic": {"canary": {"alias": "gone", "percent": 5}}}
        unchecked.create_config("clf", "dangling", traffic)
        unchecked.set_alias("clf", "staging", 2, config="dangling")
    finally:
        wired.close()

    response = site.http.get("/models/clf")
    assert response.status_code == 200
    routes = rows(response.text, "route-row")
    assert "route-error" not in routes["champion"]
    assert (
        "deployment config &#39;broken&#39; revision 1 of model &#39;clf&#39; is invalid"
        in (routes["challenger"])
    )
    assert "batching.enabled must be true or false" in routes["challenger"]
    assert "canary target &#39;gone&#39; does not resolve" in routes["staging"]
    assert "Max rows" in routes["staging"]
    # No example for a route that cannot serve; the others keep theirs.
    examples = re.findall(r'data-testid="examples" data-alias="([^"]*)"', response.text)
    assert examples == ["champion", "staging"]
    # The gateway agrees that the broken alias does not serve.
    refused = site.http.post(
        "/api/v1/models/clf/predict", json={"alias": "challenger", "inputs": records(1)}
    )
    assert refused.status_code == 503
    assert site.http.get("/serving").status_code == 200


def test_shadow_and_batching_off_are_said_in_words(site: Site) -> None:
    values = {
        "batching": {"enabled": False},
        "traffic": {"shadow": {"alias": "champion"}},
        "limits": {"max_rows": 50},
        "inputs": {"allow_missing": True},
    }
    site.client.create_config("clf", "mirror", values)
    site.client.set_alias("clf", "challenger", 2, config="mirror")
    routes = rows(site.http.get("/models/clf").text, "route-row")
    challenger = routes["challenger"]
    assert "Batching off: each request is its own model call" in challenger
    assert "Shadow: copy to version 1 (alias &#39;champion&#39;)" in challenger
    assert "Max rows: 50 per request" in challenger
    assert "Missing values: null is served as NaN" in challenger


def register_other(site: Site, tmp_path: Path, example: str | None) -> None:
    """Model 'other' v1, whose signature comes from an example of the given shape."""
    features, _ = training_data()
    save_classifier(tmp_path / "other")
    names = ["it's", *FEATURES[1:]]
    if example == "signature-only":  # a signature inferred, but no input_example.json kept
        upload = site.client.begin_upload()
        site.client.upload_file(
            upload, "model.skops", [(tmp_path / "other/model.skops").read_bytes()]
        )
        site.client.create_version(
            "other", upload, flavor="sklearn", example=example_records(features[:2])
        )
        return
    given: Any = {
        "array": features[:2].tolist(),
        "columns": {name: features[:2, i].tolist() for i, name in enumerate(names)},
        "none": None,
    }[example]
    site.client.register("other", tmp_path / "other", flavor="sklearn", example=given)


@pytest.mark.parametrize(
    ("example", "source"),
    [
        pytest.param("array", "values from the first row", id="2-D array: one 'input' column"),
        pytest.param("columns", "values from the first row", id="columns, a name with a quote"),
        pytest.param("signature-only", "placeholder values", id="no example file"),
    ],
)
def test_curl_examples_answer_whatever_the_example_shape(
    site: Site, tmp_path: Path, example: str, source: str
) -> None:
    site.client.create_model("other")
    register_other(site, tmp_path, example)
    page = site.http.get("/models/other").text
    assert f"{source} of version 1" in page
    for testid in ("curl-predict", "curl-infer"):
        found = re.search(rf'data-testid="{testid}">(.*?)</pre>', page, re.S)
        assert found is not None, testid
        command = unescape(found[1])
        if example == "columns":
            assert "it'\\''s" in command
        answer = run_curl(command)
        assert answer.status_code == 200, (command, answer.text)


def test_a_version_without_signature_says_how_to_call_it_instead_of_an_example(
    site: Site, tmp_path: Path
) -> None:
    site.client.create_model("other")
    register_other(site, tmp_path, "none")
    page = site.http.get("/models/other").text
    assert "version 1 declares no input columns" in page
    assert 'data-testid="curl-predict"' not in page


def test_default_route_is_the_latest_version_without_a_champion(site: Site) -> None:
    site.client.delete_alias("clf", "champion", reason="no champion")
    page = unescape(site.http.get("/models/clf").text)
    assert "the latest version, 2 (there is no champion alias)" in page
    default = rows(page, "route-row")[""]
    assert 'data-version="2"' in default
    plain, _ = re.findall(r"-d '(.*?)'</pre>", page, re.S)
    assert "alias" not in json.loads(plain)  # the default route's example names no alias


def test_serving_page_and_its_script_keep_the_strict_policy(site: Site) -> None:
    page = site.http.get("/serving")
    assert page.headers["content-security-policy"] == "default-src 'self'"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text  # only the same-origin file below, no inline code
    script = site.http.get("/static/corral.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "fetch(" not in script.text  # it never calls out
    assert "/serving" not in site.http.get("/openapi.json").json()["paths"]
