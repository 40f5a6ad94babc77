"""Rate limits and quotas over HTTP: a token's rate, its rows per day, a deployment's limits.

Real servers on loopback (``ServerThread``) with anonymous access closed, real tokens from
the identity service, counters in memory or in a real Redis at 127.0.0.1:6379 (the Redis
tests skip when it is down, unless ``CI=true``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral import Client
from corral.api.app import create_app
from corral.config import Settings
from corral.errors import InvalidArgument
from corral.serving.deployment import parse_deployment
from corral.wiring import Corral, open_corral
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import FEATURES, register_classifiers

PROBLEM = "application/problem+json"
REDIS_URL = "redis://127.0.0.1:6379"


def rows(count: int) -> list[dict[str, float]]:
    return [{name: 0.1 * i for name in FEATURES} for i in range(count)]


def oip_body(count: int) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": name, "shape": [count], "datatype": "FP64", "data": [0.5] * count}
            for name in FEATURES
        ]
    }


@dataclass
class Site:
    urls: list[str]
    corral: Corral
    http: httpx.Client

    def token(self, **options: Any) -> str:
        """A new token of user admin with these options (tier, rate_limit, rows_per_day)."""
        _, secret = self.corral.identity.create_token(
            "admin", name=options.pop("name", f"t{time.monotonic_ns()}"), **options
        )
        return secret

    def call(
        self, method: str, path: str, token: str, *, server: int = 0, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return self.http.request(method, self.urls[server] + path, headers=headers, **kwargs)

    def predict(self, token: str, count: int = 1, **body: Any) -> httpx.Response:
        json = {"inputs": rows(count), **body}
        return self.call("POST", "/api/v1/models/clf/predict", token, json=json)


def _open(tmp_path: Path, servers: int = 1, **overrides: Any) -> Iterator[Site]:
    settings = Settings(
        home=tmp_path / "home",
        anonymous_role="none",
        monitor_evaluate_seconds=0,
        log_predictions=False,
        **overrides,
    )
    with Client(settings=settings, actor="tester") as local:
        register_classifiers(local, tmp_path)
    opened = [open_corral(settings) for _ in range(servers)]
    assert opened[0].identity.bootstrap_admin() is not None
    try:
        with ExitStack() as stack:
            urls = [
                stack.enter_context(ServerThread(create_app(settings, corral=wired))).url
                for wired in opened
            ]
            http = stack.enter_context(httpx.Client(timeout=30))
            yield Site(urls, opened[0], http)
    finally:
        for wired in opened:
            wired.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _open(tmp_path)


def redis_or_skip() -> str:
    """The test Redis URL; a skip when nothing answers there (a failure on CI)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs Redis at {REDIS_URL}: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL}")
    finally:
        client.close()
    return REDIS_URL


def assert_429(reply: httpx.Response, *words: str, oip: bool = False) -> int:
    """The reply is a 429 naming ``words``; its Retry-After in seconds."""
    assert reply.status_code == 429, reply.text
    retry = reply.headers["retry-after"]
    assert retry.isdigit(), retry
    assert int(retry) >= 1
    if oip:
        detail = reply.json()["error"]
    else:
        assert reply.headers["content-type"].startswith(PROBLEM)
        body = reply.json()
        assert (body["status"], body["code"]) == (429, "rate_limited")
        detail = body["detail"]
    for word in words:
        assert word in detail, detail
    return int(retry)


def burst(site: Site, token: str, path: str, count: int, server: int = 0) -> list[int]:
    return [site.call("GET", path, token, server=server).status_code for _ in range(count)]


# -- a token's request rate ----------------------------------------------------------------


def test_a_token_over_its_rate_gets_429_with_retry_after_then_works_again(site: Site) -> None:
    token = site.token(name="ci", rate_limit="5/second")
    assert burst(site, token, "/api/v1/models", 5) == [200] * 5
    refused = site.call("GET", "/api/v1/models", token)
    retry = assert_429(refused, "is limited to 5/second", "retry in")
    # Every route counts (an OIP one answers in its own error shape), health never does.
    assert_429(site.call("GET", "/v2/models/clf", token), "5/second", oip=True)
    assert_429(site.predict(token), "5/second")
    assert burst(site, token, "/v2/health/ready", 3) == [200] * 3
    assert site.call("GET", "/metrics", token).status_code == 200
    time.sleep(retry + 0.05)
    assert site.call("GET", "/api/v1/models", token).status_code == 200
    # Another token has its own counter.
    assert site.call("GET", "/api/v1/models", site.token()).status_code == 200


def test_tokens_without_a_limit_of_their_own_get_the_servers_default(tmp_path: Path) -> None:
    for site in _open(tmp_path, default_rate_limit="3/minute"):
        own, default = site.token(rate_limit="100/second"), site.token()
        assert burst(site, default, "/api/v1/models", 3) == [200] * 3
        assert_429(site.call("GET", "/api/v1/models", default), "3/minute")
        assert burst(site, own, "/api/v1/models", 6) == [200] * 6
        metrics = site.call("GET", "/metrics", own).text
        assert 'corral_rate_limited_total{reason="rate",tier="bronze"} 1.0' in metrics


def test_anonymous_callers_are_counted_per_address(tmp_path: Path) -> None:
    for site in _open(tmp_path, default_rate_limit="2/minute"):
        url = site.urls[0]
        assert [site.http.get(f"{url}/openapi.json").status_code for _ in range(2)] == [200, 200]
        reply = site.http.get(f"{url}/openapi.json")
        assert_429(reply, "anonymous client at 127.0.0.1", "2/minute")
        # Tokens are counted by token, not by address.
        assert site.call("GET", "/openapi.json", site.token()).status_code == 200


def test_no_limit_by_default(site: Site) -> None:
    token = site.token()
    assert burst(site, token, "/api/v1/models", 30) == [200] * 30


# -- rows per day: the token's and the deployment's -------------------------------------


def test_a_tokens_rows_per_day_refuses_the_request_that_would_go_over(site: Site) -> None:
    token = site.token(name="batch", rows_per_day=10)
    assert site.predict(token, 4).status_code == 200
    assert site.predict(token, 4).status_code == 200
    retry = assert_429(site.predict(token, 4), "10 rows per day", "4 rows would go over")
    assert 3600 < retry <= 86400  # until the day's window ends
    # A refused request counts nothing: the two rows left are still there.
    assert site.predict(token, 2).status_code == 200
    assert_429(site.predict(token, 1), "10 rows per day")
    oip = site.call("POST", "/v2/models/clf/infer", token, json=oip_body(1))
    assert_429(oip, "10 rows per day", oip=True)
    assert_429(site.predict(site.token(rows_per_day=3), 5), "alone has 5 rows")
    metrics = site.call("GET", "/metrics", site.token()).text
    assert 'corral_rate_limited_total{reason="quota",tier="bronze"} 4.0' in metrics


def test_a_deployment_configs_limits_bound_all_callers_of_its_alias(site: Site) -> None:
    registry = site.corral.registry
    registry.create_config("clf", "metered", {"limits": {"rows_per_day": 6}})
    registry.set_alias("clf", "metered", 1, config="metered", reason="quota")
    registry.create_config("clf", "paced", {"limits": {"requests_per_second": 2}})
    registry.set_alias("clf", "paced", 1, config="paced", reason="pace")
    first, second = site.token(), site.token()
    assert site.predict(first, 4, alias="metered").status_code == 200
    refused = site.predict(second, 3, alias="metered")
    retry = assert_429(
        refused, "model 'clf' (alias 'metered')", "6 rows per day", "limits.rows_per_day"
    )
    assert retry > 3600
    assert site.predict(second, 2, alias="metered").status_code == 200
    # Other aliases of the model are not metered.
    assert site.predict(second, 5).status_code == 200

    assert [site.predict(t, alias="paced").status_code for t in (first, second)] == [200, 200]
    assert_429(site.predict(first, alias="paced"), "at most 2 requests per second")
    time.sleep(1.05)
    assert site.predict(second, alias="paced").status_code == 200


@pytest.mark.parametrize(
    ("limits", "words"),
    [
        ({"rows_per_day": 0}, "limits.rows_per_day must be a whole number of at least 1"),
        ({"requests_per_second": "10"}, "limits.requests_per_second must be a whole number"),
        ({"requests_per_second": 2.5}, "limits.requests_per_second must be a whole number"),
        ({"requests_per_minute": 5}, "unknown key requests_per_minute; allowed: max_rows"),
    ],
)
def test_deployment_limits_are_checked(limits: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        parse_deployment({"limits": limits})
    assert parse_deployment({"limits": {"rows_per_day": None}}).rows_per_day is None
    parsed = parse_deployment({"limits": {"requests_per_second": 7, "rows_per_day": 9}})
    assert (parsed.requests_per_second, parsed.rows_per_day) == (7, 9)


def test_a_config_with_bad_limits_is_refused_over_rest(site: Site) -> None:
    token = site.token()
    reply = site.call(
        "POST",
        "/api/v1/models/clf/configs/x",
        token,
        json={"values": {"limits": {"rows_per_day": -1}}},
    )
    assert reply.status_code in (400, 422), reply.text
    assert "limits.rows_per_day" in reply.text


# -- where the counters live ---------------------------------------------------------------


def _alternate(site: Site, token: str, count: int) -> list[int]:
    return [
        site.call("GET", "/api/v1/models", token, server=i % 2).status_code for i in range(count)
    ]


def test_two_servers_on_one_redis_share_a_tokens_counter(tmp_path: Path) -> None:
    url = redis_or_skip()
    for site in _open(tmp_path, servers=2, rate_limit_storage=url):
        token = site.token(rate_limit="4/minute")
        assert _alternate(site, token, 5) == [200, 200, 200, 200, 429]
        assert_429(site.call("GET", "/api/v1/models", token, server=0), "4/minute")


def test_two_servers_in_memory_count_alone(tmp_path: Path) -> None:
    for site in _open(tmp_path, servers=2):
        token = site.token(rate_limit="4/minute")
        assert _alternate(site, token, 8) == [200] * 8
        assert _alternate(site, token, 2) == [429, 429]


def test_a_redis_quota_works_across_servers(tmp_path: Path) -> None:
    url = redis_or_skip()
    for site in _open(tmp_path, servers=2, rate_limit_storage=url):
        token = site.token(rows_per_day=5)
        assert site.predict(token, 3).status_code == 200
        refused = site.call(
            "POST", "/api/v1/models/clf/predict", token, server=1, json={"inputs": rows(3)}
        )
        assert_429(refused, "5 rows per day")


def test_an_unreachable_redis_lets_requests_through(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for site in _open(tmp_path, rate_limit_storage="redis://127.0.0.1:9"):
        token = site.token(rate_limit="1/minute")
        assert burst(site, token, "/api/v1/models", 3) == [200] * 3
    assert "rate limits are not enforced" in caplog.text


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ({"rate_limit_storage": "memcached://127.0.0.1:11211"}, "use memory:// "),
        ({"default_rate_limit": "lots"}, "rate limit 'lots' is not understood"),
    ],
)
def test_bad_rate_limit_settings_fail_at_start(
    tmp_path: Path, setting: dict[str, str], words: str
) -> None:
    settings = Settings(home=tmp_path / "home", **setting)  # type: ignore[arg-type]
    wired = open_corral(settings)
    try:
        with pytest.raises(InvalidArgument, match=words):
            create_app(settings, corral=wired)
    finally:
        wired.close()


def test_a_token_with_a_bad_rate_limit_is_refused_clearly(site: Site) -> None:
    try:
        token = site.token(rate_limit="often")
    except InvalidArgument:
        return  # the identity service refuses it up front: nothing to serve
    reply = site.call("GET", "/api/v1/models", token)
    assert reply.status_code == 400, reply.text
    assert "rate limit 'often' is not understood" in reply.json()["detail"]
