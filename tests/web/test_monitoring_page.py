"""The monitoring pages on a real server: logged predictions, feedback, objectives, drift.

A real scikit-learn classifier is served by uvicorn; predictions go over HTTP and are
logged by the server; labels come back over HTTP; objectives are evaluated by the service
on the same home. Pages are read over HTTP and in headless Chromium.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from corral import Client
from corral.config import Settings
from corral.wiring import Corral, open_corral
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import FEATURES, example_records, register_classifiers, training_data

if TYPE_CHECKING:
    from playwright.sync_api import Page

REQUESTS = 12
ROWS_PER_REQUEST = 5
LABELLED_REQUESTS = 8
SCREENSHOT = Path("/tmp/corral-monitoring-page.png")
OBJECTIVES = {
    "ok": "accuracy >= 0.5 over 1d",
    "breached": "p95_latency_ms <= 0.001 over 1h",
    "no_data": "accuracy >= 0.5 over 1d, min 100000",
}


@dataclass
class Site:
    url: str
    http: httpx.Client
    wired: Corral
    objectives: dict[str, int]  # expected state -> objective id


def _wait_for_log(wired: Corral, model: str, requests: int) -> None:
    """Until the server has flushed ``requests`` logged requests (it flushes every 0.2 s)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (wired.monitoring.status(model).get("requests_24h") or 0) >= requests:
            return
        time.sleep(0.1)
    raise AssertionError(f"the server did not log {requests} requests of '{model}' in 20 s")


def _predict(http: httpx.Client, rows: np.ndarray) -> str:
    response = http.post("/api/v1/models/clf/predict", json={"inputs": example_records(rows)})
    response.raise_for_status()
    request_id: str = response.json()["request_id"]
    return request_id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Model 'clf' with logged traffic, feedback and evaluated objectives; 'quiet' with none."""
    tmp = tmp_path_factory.mktemp("monitoring")
    settings = Settings(
        home=tmp / "home",
        route_poll_seconds=0.05,
        log_flush_seconds=0.2,
        monitor_evaluate_seconds=0,
    )
    with Client(settings=settings, actor="tester") as client:
        register_classifiers(client, tmp)
    features, labels = training_data(seed=3, rows=REQUESTS * ROWS_PER_REQUEST)
    with (
        ServerThread(settings) as server,
        httpx.Client(base_url=server.url, headers={"X-Corral-Actor": "ana"}) as http,
    ):
        http.post("/api/v1/models", json={"name": "quiet"}).raise_for_status()
        feedback: list[dict[str, Any]] = []
        for number in range(REQUESTS):
            rows = slice(number * ROWS_PER_REQUEST, (number + 1) * ROWS_PER_REQUEST)
            request_id = _predict(http, features[rows])
            if number < LABELLED_REQUESTS:
                feedback += [
                    {"request_id": request_id, "row": row, "label": int(label)}
                    for row, label in enumerate(labels[rows])
                ]
        wired = open_corral(settings)
        try:
            _wait_for_log(wired, "clf", REQUESTS)
            http.post("/api/v1/models/clf/feedback", json=feedback).raise_for_status()
            svc = wired.monitoring
            ids = {
                state: svc.create_objective("clf", text, actor="ana").id
                for state, text in OBJECTIVES.items()
            }
            svc.evaluate("clf")
            yield Site(server.url, http, wired, ids)
        finally:
            wired.close()


def _rows(html: str, testid: str) -> list[str]:
    return re.findall(rf'<tr data-testid="{testid}".*?</tr>', html, re.S)


def _series_count(html: str, chart: str) -> int:
    match = re.search(rf'data-chart="{chart}" data-series-count="(\d+)"', html)
    assert match, f"no chart {chart}"
    return int(match.group(1))


# -- over HTTP ---------------------------------------------------------------------------


def test_the_page_charts_traffic_latency_and_realised_beside_estimated_accuracy(
    site: Site,
) -> None:
    response = site.http.get("/models/clf/monitoring")

    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == "default-src 'self'"
    html = response.text
    assert 'data-testid="monitoring-empty"' not in html
    assert _series_count(html, "chart-traffic") == 3
    assert _series_count(html, "chart-latency") == 3
    assert _series_count(html, "chart-metric-accuracy") == 2  # realised and estimated
    assert 'data-series="estimated_accuracy"' in html
    assert html.count("<svg") >= 3
    assert "style=" not in html  # the CSP forbids inline styles
    assert "<script>" not in html
    assert re.search(r'data-testid="requests-24h">\s*12<', html)
    labelled = LABELLED_REQUESTS * ROWS_PER_REQUEST
    assert f"{labelled} logged rows in this window have feedback" in html


def test_objectives_show_their_evaluated_state_and_the_breach_opens_an_alert(
    site: Site,
) -> None:
    html = site.http.get("/models/clf/monitoring").text

    states = {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r'data-objective="(\d+)" data-state="([a-z_]+)"', html)
    }
    assert states == {number: state for state, number in site.objectives.items()}
    breached = next(r for r in _rows(html, "objective-row") if 'data-state="breached"' in r)
    assert ">breached</span>" in breached
    assert "p95_latency_ms &lt;= 0.001 over 1h" in breached
    (alert,) = _rows(html, "alert-row")
    assert 'data-state="open"' in alert
    assert "p95_latency_ms &lt;= 0.001 over 1h" in alert
    assert html.count('data-testid="objective-history"') == len(OBJECTIVES)
    assert f'id="chart-objective-{site.objectives["breached"]}"' in html


def test_the_drift_table_has_a_row_per_feature_and_the_prediction(site: Site) -> None:
    html = site.http.get("/models/clf/monitoring", params={"reference": "example"}).text

    rows = _rows(html, "drift-row")
    names = [re.search(r'data-column="([^"]*)"', row).group(1) for row in rows]  # type: ignore[union-attr]
    assert names[: len(FEATURES)] == FEATURES
    assert names[len(FEATURES) :] == ["prediction"]
    assert 'data-testid="drift-summary"' in html
    assert all('data-testid="missing">0.0 %' in row for row in rows[: len(FEATURES)])
    assert 'data-chart="chart-drift-0"' in html
    assert html.count('data-testid="histogram"') == len(FEATURES)  # not the untested prediction


def test_a_model_without_logs_shows_how_to_send_a_prediction(site: Site) -> None:
    html = site.http.get("/models/quiet/monitoring").text

    assert 'data-testid="monitoring-empty"' in html
    assert f"curl -s {site.url}/api/v1/models/quiet/predict" in html
    assert 'data-testid="performance-empty"' in html
    assert 'data-testid="objectives-empty"' in html
    assert 'data-testid="alerts-empty"' in html
    assert "no data in this window" in html


def test_the_window_and_bucket_come_from_the_query_string(site: Site) -> None:
    html = site.http.get("/models/clf/monitoring", params={"window": "7d", "bucket": "1d"}).text

    assert "The last 7d in buckets of 1d" in html
    assert '<a href="?window=7d&amp;bucket=1d" aria-current="true">' in html
    traffic = re.search(r'data-chart="chart-traffic".*?</figure>', html, re.S)
    assert traffic
    assert traffic.group(0).count('<tr><th scope="row">') == 7


def test_a_version_filter_shows_only_that_versions_traffic(site: Site) -> None:
    html = site.http.get("/models/clf/monitoring", params={"version": "2"}).text

    assert 'data-testid="version-filter">version 2 only' in html
    assert "?version=2&amp;window=24h&amp;bucket=1h" in html  # the presets keep the filter
    traffic = re.search(r'data-chart="chart-traffic".*?</figure>', html, re.S)
    assert traffic
    requests = re.findall(
        r'<th scope="row">[^<]*</th><td class="num">([^<]*)</td>', traffic.group(0)
    )
    assert requests
    assert set(requests) == {"0"}  # version 1 (the champion) served every request


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": "forever"}, "window &#39;forever&#39; is not a duration"),
        ({"window": "1h", "bucket": "1d"}, "longer than the window"),
        ({"window": "30d", "bucket": "1m"}, "pick a larger bucket"),
        ({"version": "x"}, "version &#39;x&#39; is not a number"),
    ],
)
def test_a_bad_query_is_a_400_page_naming_the_problem(
    site: Site, params: dict[str, str], message: str
) -> None:
    response = site.http.get("/models/clf/monitoring", params=params)

    assert response.status_code == 400
    assert message in response.text


def test_an_unknown_model_is_a_404_page(site: Site) -> None:
    response = site.http.get("/models/nope/monitoring")

    assert response.status_code == 404
    assert "corral register nope PATH" in response.text


def test_the_overview_lists_open_alerts_and_each_models_objective_states(site: Site) -> None:
    html = site.http.get("/monitoring").text

    (alert,) = _rows(html, "alert-row")
    assert 'href="/models/clf/monitoring"' in alert
    health = {re.search(r'data-model="([^"]*)"', r).group(1): r for r in _rows(html, "health-row")}  # type: ignore[union-attr]
    assert set(health) == {"clf", "quiet"}
    assert 'data-worst="breached"' in health["clf"]
    assert "1 breached" in health["clf"]
    assert "no objectives" in health["quiet"]
    assert 'href="/monitoring" aria-current="page"' in html


# -- in a real browser -------------------------------------------------------------------


@pytest.mark.browser
def test_browser_reaches_the_charts_from_the_model_page_without_errors_or_outside_requests(
    site: Site, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{site.url}/models/clf")
    page.get_by_test_id("monitoring-link").click()
    expect(page).to_have_url(f"{site.url}/models/clf/monitoring")
    expect(page.get_by_test_id("monitoring-title")).to_have_text("Monitoring: clf")

    traffic = page.locator('[data-chart="chart-traffic"] svg')
    expect(traffic.locator("g.series")).to_have_count(3)
    expect(traffic.locator("g.series path.line").first).to_be_visible()
    latency = page.locator('[data-chart="chart-latency"] svg g.series')
    expect(latency).to_have_count(3)
    accuracy = page.locator('[data-chart="chart-metric-accuracy"] svg g.series')
    expect(accuracy).to_have_count(2)
    # The stylesheet drew the estimate dashed (the CSP let it load).
    dashed = accuracy.nth(1).locator("path.line")
    assert dashed.evaluate("e => getComputedStyle(e).strokeDasharray") != "none"

    breached = page.locator('[data-testid="objective-row"][data-state="breached"]')
    expect(breached.get_by_test_id("state")).to_have_text("breached")
    colour = breached.locator(".state").evaluate("e => getComputedStyle(e).color")
    ok = page.locator('[data-testid="objective-row"][data-state="ok"] .state')
    assert colour != ok.evaluate("e => getComputedStyle(e).color")
    expect(page.locator('[data-testid="alert-row"][data-state="open"]')).to_have_count(1)

    # The data under a chart opens without script.
    table = page.locator('[data-chart="chart-traffic"] details.chart-data')
    table.locator("summary").click()
    expect(table.get_by_test_id("chart-table")).to_be_visible()

    page.goto(f"{site.url}/models/clf/monitoring?reference=example")
    expect(page.get_by_test_id("drift-row")).to_have_count(len(FEATURES) + 1)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Monitoring").click()
    expect(page).to_have_url(f"{site.url}/monitoring")
    expect(page.get_by_test_id("alert-row")).to_have_count(1)

    assert browser_console == []
    assert requested
    assert all(url.startswith(site.url + "/") for url in requested), requested


@pytest.mark.browser
def test_browser_shows_the_empty_state_of_a_model_without_logs(
    site: Site, browser_page: Page, browser_console: list[str]
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    page.goto(f"{site.url}/models/quiet/monitoring")

    empty = page.get_by_test_id("monitoring-empty")
    expect(empty).to_contain_text("No predictions logged yet")
    expect(empty.get_by_test_id("curl-predict")).to_contain_text("/api/v1/models/quiet/predict")
    expect(page.locator('[data-chart="chart-latency"] svg text.no-data')).to_be_visible()
    assert browser_console == []


# -- the drift section, from a real drift report -----------------------------------------


def test_drift_charts_group_columns_by_method_and_highlight_the_drifted_ones() -> None:
    from corral.monitoring.columns import ArrayColumns
    from corral.monitoring.drift import DriftSettings, drift_report
    from corral.web._drift import report_view

    rng = np.random.default_rng(0)
    size = 400
    reference = {
        "age": rng.normal(40, 5, size),
        "income": rng.normal(10, 1, size),
        "score": rng.normal(0, 1, size),
        "city": rng.choice(["a", "b", "c"], size),
        "constant": np.ones(size),
    }
    current = {
        "age": rng.normal(48, 5, size),  # drifted
        "income": rng.normal(10, 1, size),
        "score": rng.normal(0, 1, size),
        "city": rng.choice(["a", "b", "c"], size),
        "constant": np.ones(size),
    }
    settings = DriftSettings.from_dict({"columns": {"score": {"method": "psi"}}})
    report = drift_report(ArrayColumns(reference), ArrayColumns(current), settings)

    view = report_view(report.to_dict())

    assert [row.name for row in view.rows] == list(reference)
    drifted = {row.name for row in view.rows if row.drifted}
    assert drifted == {"age"}
    titles = sorted(chart.title for chart in view.charts)
    assert titles == [
        "Drift by feature: chisquare",
        "Drift by feature: ks",
        "Drift by feature: psi",
    ]
    ks = next(chart for chart in view.charts if chart.title.endswith("ks"))
    assert [row[0] for row in ks.rows] == ["age", "income"]
    assert [row[2] for row in ks.rows] == ["yes", "no"]
    constant = next(row for row in view.rows if row.name == "constant")
    assert "constant" in constant.note
    assert 'class="bar is-highlight" data-label="age"' in ks.svg
    assert "p &lt; 0.05" in ks.svg
    assert view.summary.startswith("1 of 5 tested features drifted (20 %)")
    assert not view.dataset_drift
    assert all(row.histogram is not None for row in view.rows)
