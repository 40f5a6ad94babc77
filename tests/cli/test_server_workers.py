"""`corral server --workers N`: a supervisor and N worker processes sharing one port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from corral.api.serve import _adopt, _listen
from tests.fixtures.corral import free_port

STARTUP = 120.0  # generous bounds for a loaded 2-core machine; never a performance claim
STOP = 60.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()

    def wait_for_log(self, text: str) -> None:
        deadline = time.monotonic() + STARTUP
        while text not in self.log():
            assert self.process.poll() is None, self.log()
            assert time.monotonic() < deadline, f"no {text!r} in the server's log:\n{self.log()}"
            time.sleep(0.1)


def _run(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    environment = {**os.environ, "CORRAL_HOME": str(tmp_path / "home"), **env}
    environment.pop("CORRAL_SERVER_URL", None)
    stderr = tmp_path / "stderr.txt"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "corral", "server", *args],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    return process, stderr


def _processes_on_home(tmp_path: Path) -> list[psutil.Process]:
    """Live processes (supervisor or workers) serving this test's Corral home."""
    home = str(tmp_path / "home")
    found = []
    for process in psutil.process_iter():
        try:
            if (
                process.environ().get("CORRAL_HOME") == home
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _end(process: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """Stop what a test started if it still runs: the supervisor, then any worker left."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP)
    _, alive = psutil.wait_procs(_processes_on_home(tmp_path), timeout=STOP)
    for leftover in alive:
        leftover.kill()


def _start_server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    process, stderr = _run(tmp_path, "--port", str(port), "--workers", "2")
    running = Server(process, f"http://127.0.0.1:{port}", port, stderr)
    try:
        running.wait_for_log("2 workers serving")
        yield running
    finally:
        _end(process, tmp_path)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`corral server --workers 2` on a free port, once both workers serve; tests leave it so."""
    yield from _start_server(tmp_path_factory.mktemp("shared"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`corral server --workers 2` of one test's own, to stop or kill."""
    yield from _start_server(tmp_path)


def _listening_ports(process: psutil.Process) -> set[int]:
    connections = getattr(process, "net_connections", None) or process.connections
    return {c.laddr.port for c in connections(kind="tcp") if c.status == psutil.CONN_LISTEN}


def _get_on_a_new_connection(url: str) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        return client.get(url, headers={"Connection": "close"})


@pytest.mark.slow
def test_two_workers_share_the_port_and_answer_many_new_connections(
    shared_server: Server,
) -> None:
    server = shared_server
    workers = server.workers()
    assert len({w.pid for w in workers}) == 2
    assert all(w.is_running() and server.port in _listening_ports(w) for w in workers)
    assert all(
        "corral.api.serve" in " ".join(w.cmdline()) and "worker" in w.cmdline() for w in workers
    )
    responses = [_get_on_a_new_connection(f"{server.url}/api/v1/models") for _ in range(40)]
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["total"] for r in responses} == {0}


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(shared_server: Server) -> None:
    server = shared_server
    victim, survivor = server.workers()
    victim.kill()
    victim.wait(timeout=STOP)
    # The survivor holds the same socket: new connections are answered meanwhile.
    for _ in range(10):
        assert _get_on_a_new_connection(f"{server.url}/api/v1/models").status_code == 200
    server.wait_for_log(f"(pid {victim.pid}) was killed by SIGKILL")
    server.wait_for_log("is serving")
    workers = server.workers()
    assert len(workers) == 2
    assert victim.pid not in {w.pid for w in workers}
    assert survivor.pid in {w.pid for w in workers}
    assert "restarting it in" in server.log()
    for _ in range(10):
        assert _get_on_a_new_connection(f"{server.url}/api/v1/models").status_code == 200


@pytest.mark.slow
def test_sigterm_stops_the_supervisor_and_every_worker(server: Server) -> None:
    workers = server.workers()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=STOP) == -signal.SIGTERM  # as one in-process server
    _, alive = psutil.wait_procs(workers, timeout=STOP)
    assert alive == []
    assert _processes_on_home(server.stderr.parent) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/api/v1/models", timeout=5)


@pytest.mark.slow
def test_workers_stop_by_themselves_when_the_supervisor_is_killed(server: Server) -> None:
    workers = server.workers()
    server.process.kill()  # no chance to stop its workers: they notice their stdin closing
    server.process.wait(timeout=STOP)
    _, alive = psutil.wait_procs(workers, timeout=STOP)
    assert alive == []


@pytest.mark.slow
def test_a_worker_that_cannot_start_stops_the_server_with_an_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    database = f"sqlite:///{tmp_path / 'a-file' / 'corral.db'}"  # a folder that cannot exist
    process, stderr = _run(
        tmp_path, "--port", str(free_port()), "--workers", "2", CORRAL_DATABASE_URL=database
    )
    try:
        assert process.wait(timeout=STARTUP) == 1
        assert "could not start" in stderr.read_text(), stderr.read_text()
        assert _processes_on_home(tmp_path) == []  # the supervisor reaped its workers
    finally:
        _end(process, tmp_path)


def test_a_port_in_use_is_refused_before_any_worker_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process, stderr = _run(tmp_path, "--port", str(port), "--workers", "2")
        try:
            assert process.wait(timeout=STARTUP) == 1
        finally:
            _end(process, tmp_path)
    assert f"error: cannot listen on 127.0.0.1:{port}" in stderr.read_text()


def test_workers_below_one_are_a_usage_error(tmp_path: Path) -> None:
    process, stderr = _run(tmp_path, "--workers", "0")
    assert process.wait(timeout=STARTUP) == 2
    assert "--workers" in stderr.read_text()


def test_connections_accepted_by_a_worker_have_nagle_off() -> None:
    """The multi-worker keep-alive trap: without TCP_NODELAY each response waits ~40 ms."""
    listener = _listen("127.0.0.1", 0)
    adopted = _adopt(listener.family, os.dup(listener.fileno()))  # as a worker receives it
    listener.close()
    port = adopted.getsockname()[1]

    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Record(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Record, sock=adopted)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            value = await asyncio.wait_for(seen, timeout=30)
            writer.close()
            return value

    assert asyncio.run(accepted_nodelay()) != 0
