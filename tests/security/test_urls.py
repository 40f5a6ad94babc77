"""Outbound URLs: the policy refuses schemes and non-public hosts, webhooks obey it at
creation (through a real server) and at delivery, and a redirect is never followed.

Real receivers on loopback; only DNS is replaced, where a test needs a public name."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.config import Settings
from corral.monitoring.entities import Alert, AlertState, Webhook
from corral.security.urls import UrlPolicy, UrlRefused
from corral.store.webhooks import HttpNotifier
from tests.fixtures.corral import ServerThread

SECRET = "whsec-0123456789abcdef"
PUBLIC = "93.184.215.14"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def dns(*addresses: str) -> Any:
    """A resolver answering every name with ``addresses`` (the outside world, faked)."""
    return lambda host: list(addresses)


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost/", "loopback"),
        ("http://LOCALHOST./", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[::ffff:a9fe:a9fe]/", "link-local"),
        ("http://[2002:7f00:1::]/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f000001/", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("http://0177.0.0.1/", "loopback"),
        ("http://127.1/", "loopback"),
        ("http://2852039166/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://0/", "unspecified"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "not a public address"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://127.0.0.1:6379/_INFO", "scheme 'gopher'"),
        ("ftp://ftp.example/x", "scheme 'ftp'"),
        ("dict://127.0.0.1:11211/", "scheme 'dict'"),
        ("//hooks.example/x", "scheme '(none)'"),
    ],
)
def test_policy_refuses_non_public_hosts_and_other_schemes(url: str, rule: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        UrlPolicy().check(url)
    assert rule in refused.value.message
    assert repr(url) in refused.value.message
    assert refused.value.code == "invalid_argument"


def test_policy_refuses_a_name_when_any_of_its_addresses_is_private() -> None:
    policy = UrlPolicy(resolver=dns(PUBLIC, "10.0.0.7"))
    with pytest.raises(UrlRefused, match=r"hooks\.example \(10\.0\.0\.7\) is private"):
        policy.check("https://hooks.example/x")


def test_policy_refuses_a_name_that_does_not_resolve() -> None:
    def nowhere(host: str) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(UrlRefused, match="does not resolve"):
        UrlPolicy(resolver=nowhere).check("https://hooks.example/x")


def test_policy_allows_public_hosts_names_and_addresses() -> None:
    policy = UrlPolicy(resolver=dns(PUBLIC, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"))
    assert policy.check(" https://hooks.example/x ") == "https://hooks.example/x"
    assert policy.check(f"http://{PUBLIC}:9/hook") == f"http://{PUBLIC}:9/hook"


def test_policy_allows_private_hosts_when_configured() -> None:
    assert UrlPolicy(allow_private=True).check("http://127.0.0.1:9/") == "http://127.0.0.1:9/"
    named = UrlPolicy(allowed_hosts=("LocalHost",))
    assert named.check("http://localhost:9/") == "http://localhost:9/"
    network = UrlPolicy(allowed_hosts=("10.1.0.0/16", "127.0.0.1"))
    assert network.check("http://10.1.2.3/") == "http://10.1.2.3/"
    assert network.check("http://2130706433/") == "http://2130706433/"
    with pytest.raises(UrlRefused, match="private"):
        network.check("http://10.2.0.1/")
    with pytest.raises(UrlRefused, match="scheme 'file'"):
        UrlPolicy(allow_private=True).check("file:///etc/passwd")


def test_policy_takes_its_hosts_from_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, outbound_allowed_hosts=["alerts.internal"])
    policy = UrlPolicy.from_settings(
        settings.outbound_allow_private, settings.outbound_allowed_hosts
    )
    assert policy.check("https://alerts.internal/x") == "https://alerts.internal/x"
    with pytest.raises(UrlRefused, match="CORRAL_OUTBOUND_ALLOWED_HOSTS"):
        policy.check("http://127.0.0.1/")


# -- delivery ---------------------------------------------------------------------------


@dataclass
class Receiver:
    """An HTTP server on loopback that records each request and answers with ``reply``."""

    url: str
    requests: list[str] = field(default_factory=list)
    reply: tuple[int, dict[str, str]] = (204, {})


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """Two receivers on loopback (the second to catch a followed redirect)."""
    made: list[Receiver] = []
    servers: list[ThreadingHTTPServer] = []
    for _ in range(2):
        receiver = Receiver("")

        class Handler(BaseHTTPRequestHandler):
            me = receiver

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.me.requests.append(self.path)
                status, headers = self.me.reply
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        made.append(receiver)
        servers.append(server)
    try:
        yield made
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _deliver(notifier: HttpNotifier, url: str) -> list[Any]:
    webhook = Webhook(id=1, url=url)
    alert = Alert(
        id=1, model="clf", objective_id=1, state=AlertState.OPEN, opened_at=T0, message="m"
    )
    return list(notifier.deliver(webhook, SECRET, alert, "test", {"model": "clf"}))


def test_delivery_to_a_loopback_webhook_is_refused_without_a_request(
    receivers: list[Receiver],
) -> None:
    notifier = HttpNotifier(attempts=3, sleep=lambda s: None, check_url=UrlPolicy().check)
    [delivery] = _deliver(notifier, receivers[0].url)
    assert not delivery.succeeded
    assert delivery.status_code is None
    assert "loopback" in delivery.error
    assert receivers[0].requests == []


def test_delivery_does_not_follow_a_redirect_to_the_metadata_address(
    receivers: list[Receiver],
) -> None:
    receivers[0].reply = (302, {"Location": "http://169.254.169.254/latest/meta-data"})
    policy = UrlPolicy(allowed_hosts=("127.0.0.1",))
    notifier = HttpNotifier(attempts=3, sleep=lambda s: None, check_url=policy.check)
    [delivery] = _deliver(notifier, receivers[0].url)
    assert (delivery.succeeded, delivery.status_code) == (False, 302)
    assert delivery.error.startswith("HTTP 302")
    assert receivers[0].requests == ["/hook"]


def test_delivery_does_not_follow_a_redirect_to_another_loopback_host(
    receivers: list[Receiver],
) -> None:
    first, second = receivers
    # "localhost" is not allowed, only the first receiver's address is: following would POST
    # to the second receiver.
    first.reply = (307, {"Location": second.url.replace("127.0.0.1", "localhost")})
    policy = UrlPolicy(allowed_hosts=("127.0.0.1",))
    notifier = HttpNotifier(attempts=3, sleep=lambda s: None, check_url=policy.check)
    [delivery] = _deliver(notifier, first.url)
    assert (delivery.succeeded, delivery.status_code) == (False, 307)
    assert first.requests == ["/hook"]
    assert second.requests == []


def test_delivery_to_an_allowed_loopback_host_is_made(receivers: list[Receiver]) -> None:
    policy = UrlPolicy(allowed_hosts=("127.0.0.1",))
    notifier = HttpNotifier(attempts=1, check_url=policy.check)
    [delivery] = _deliver(notifier, receivers[0].url)
    assert (delivery.succeeded, delivery.status_code) == (True, 204)
    assert receivers[0].requests == ["/hook"]


# -- creation through the API -----------------------------------------------------------


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server with the default policy (no private addresses)."""
    settings = Settings(home=tmp_path_factory.mktemp("urls") / "home", monitor_evaluate_seconds=0)
    with ServerThread(settings) as server:
        yield server.url


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("file:///etc/passwd", "must start with http:// or https://"),
    ],
)
def test_creating_a_webhook_to_a_forbidden_url_is_refused_by_the_api(
    server_url: str, url: str, rule: str
) -> None:
    with httpx.Client(base_url=server_url) as http:
        reply = http.post("/api/v1/webhooks", json={"url": url, "secret": SECRET})
        listed = http.get("/api/v1/webhooks")
    assert reply.status_code == 400
    assert reply.headers["content-type"].startswith("application/problem+json")
    problem = reply.json()
    assert problem["code"] == "invalid_argument"
    assert rule in problem["detail"]
    assert listed.status_code == 200
    assert url not in listed.text
