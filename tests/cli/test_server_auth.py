"""`corral server` and tokens: the first start prints an admin token once; revocations reach
every worker. Real `corral server` processes on free ports, each on a fresh Corral home."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.test_server_workers import STARTUP, Server, _end, _run
from tests.fixtures.corral import free_port

TOKEN = re.compile(r"crl_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")
CLOSED = {"CORRAL_ANONYMOUS_ROLE": "none", "CORRAL_ROUTE_POLL_SECONDS": "0.1"}


def _start(tmp_path: Path, *args: str) -> Server:
    port = free_port()
    process, stderr = _run(tmp_path, "--port", str(port), *args, **CLOSED)
    server = Server(process, f"http://127.0.0.1:{port}", port, stderr)
    deadline = time.monotonic() + STARTUP
    while True:
        assert process.poll() is None, server.log()
        try:
            if httpx.get(f"{server.url}/v2/health/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"the server did not start:\n{server.log()}"
        time.sleep(0.1)
    if "--workers" in args:
        server.wait_for_log("workers serving")
    return server


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Server]]:
    """The servers a test starts (on the same home, one after another); all stopped after."""
    servers: list[Server] = []
    yield servers
    for server in servers:
        _end(server.process, tmp_path)


def _models(server: Server, token: str | None) -> httpx.Response:
    headers = {"Connection": "close"}  # a new connection: any worker may take it
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(f"{server.url}/api/v1/models", headers=headers, timeout=30)


def _worker(reply: httpx.Response) -> str:
    """Which process answered: request ids start with a random per-process prefix."""
    return reply.headers["x-request-id"][:16]


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    environment = {**os.environ, "CORRAL_HOME": str(tmp_path / "cli-home")}
    environment.pop("CORRAL_TOKEN", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_the_first_start_prints_a_working_admin_token_and_the_second_start_none(
    tmp_path: Path, started: list[Server]
) -> None:
    first = _start(tmp_path)
    started.append(first)
    log = first.log()
    [token] = TOKEN.findall(log.split("export")[0])
    assert f"created user 'admin'; its token (shown once): {token}" in log
    assert f"export CORRAL_TOKEN={token}" in log
    assert _models(first, token).status_code == 200
    refused = _models(first, None)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    _end(first.process, tmp_path)

    second = _start(tmp_path)
    started.append(second)
    assert "crl_" not in second.log()
    assert "created user" not in second.log()
    assert _models(second, token).status_code == 200  # the token outlives the process

    # The CLI sends --token, or CORRAL_TOKEN, to the server it is pointed at.
    server = ["--server", second.url]
    denied = _cli(tmp_path, *server, "model", "list")
    assert denied.returncode == 1
    assert "needs a token" in denied.stderr
    assert _cli(tmp_path, *server, "--token", token, "model", "list").returncode == 0
    assert _cli(tmp_path, *server, "model", "list", CORRAL_TOKEN=token).returncode == 0
    wrong = _cli(tmp_path, *server, "--token", "crl_000000000000_wrong", "model", "list")
    assert (wrong.returncode, wrong.stderr.startswith("error: ")) == (1, True)


@pytest.mark.slow
def test_a_revoked_token_is_refused_by_every_worker_within_a_second(
    tmp_path: Path, started: list[Server]
) -> None:
    server = _start(tmp_path, "--workers", "2")
    started.append(server)
    server.wait_for_log("export CORRAL_TOKEN=")  # printed once both workers serve
    [admin] = TOKEN.findall(server.log().split("export")[0])
    as_admin = {"Authorization": f"Bearer {admin}"}
    made = httpx.post(
        f"{server.url}/api/v1/tokens", json={"name": "laptop"}, headers=as_admin, timeout=30
    )
    assert made.status_code == 201, made.text
    token_id, secret = made.json()["id"], made.json()["secret"]

    # Both workers accept it (and so hold it in their caches).
    served: set[str] = set()
    for _ in range(200):
        reply = _models(server, secret)
        assert reply.status_code == 200, reply.text
        served.add(_worker(reply))
        if len(served) == 2:
            break
    assert len(served) == 2, "one worker answered every request"

    revoked = httpx.delete(f"{server.url}/api/v1/tokens/{token_id}", headers=as_admin, timeout=30)
    assert revoked.is_success, revoked.text
    time.sleep(1.0)  # route_poll_seconds is 0.1: every worker refreshed by now

    refused: set[str] = set()
    sent = 0
    while sent < 20 or (len(refused) < 2 and sent < 200):
        reply = _models(server, secret)
        sent += 1
        assert reply.status_code == 401, (sent, reply.text)
        assert "revoked" in reply.json()["detail"]
        refused.add(_worker(reply))
    assert refused == served
    assert _models(server, admin).status_code == 200
