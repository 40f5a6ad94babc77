"""Running the app: in this process, or as a supervisor of N worker processes.

With ``workers > 1`` the parent binds one listening socket and starts N workers
(``python -m corral.api.serve worker <n>``). Each inherits the socket, builds its own app
with ``create_app(settings)`` and runs a uvicorn server on it; the kernel gives each new
connection to whichever worker accepts it. The parent only supervises: it restarts a
worker that dies (with backoff), and stops them all on SIGINT or SIGTERM. A worker also
stops when its parent is gone (its stdin, a pipe from the parent, reaches EOF).

Two choices are the point of this module (docs/scaling.md has the measurements):

- The listening socket is created with ``IPPROTO_TCP`` as its protocol. asyncio turns
  Nagle's algorithm off (TCP_NODELAY) on accepted connections only when the listening
  socket says it is TCP; uvicorn's own ``--workers`` binds with protocol 0, so on the
  asyncio loop each response (headers and body are two writes) waits for the client's
  delayed ACK: ~44 ms per request on a kept-alive connection (Kludex/uvicorn#3149).
- Workers share one socket instead of each binding its own with SO_REUSEPORT: a dying
  worker then loses only the connections it was serving, not those queued for it, and no
  other process can silently join the port.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import Any

import uvicorn

from corral.config import Settings
from corral.errors import CorralError, InvalidArgument, Unavailable

__all__ = ["bootstrap_admin", "serve"]

Say = Callable[[str], None]

_READY = b"r"
_BACKLOG = 2048
_FIRST_DELAY = 0.25  # seconds before the first restart of a worker; doubles per quick death
_MAX_DELAY = 30.0
_HEALTHY_AFTER = 30.0  # a worker that lived this long starts its backoff afresh


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")


def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    workers: int = 1,
    say: Say = _stderr,
    stop_timeout: float = 30.0,
    loop: str = "auto",
    http: str = "auto",
) -> None:
    """Serve Corral on ``host:port`` with ``workers`` processes (1: in this process).

    Args:
        say: where the supervisor's log lines go (a worker died, restarted...).
        stop_timeout: seconds workers get to finish their requests on stop before being killed.
        loop: uvicorn's event loop (``auto``: uvloop when installed, else asyncio).
        http: uvicorn's HTTP parser (``auto``: httptools when installed, else h11).
    """
    if workers < 1:
        raise InvalidArgument(f"--workers must be 1 or more, not {workers}")
    options = {"loop": loop, "http": http, "log_level": "warning", "access_log": False}
    if workers == 1:
        _serve_in_process(settings, host, port, options, say)
        return
    if os.name != "posix":
        raise InvalidArgument("--workers above 1 needs a POSIX system (Linux, macOS); use 1")
    listener = _listen(host, port)
    try:
        # The first start's admin is made once, here, when the workers (which migrate the
        # database) all serve: never by each worker.
        started = partial(bootstrap_admin, settings, say)
        _Supervisor(settings, listener, workers, options, say, stop_timeout, started).run()
    finally:
        listener.close()


def bootstrap_admin(settings: Settings, say: Say = _stderr) -> str | None:
    """On the first start (no users yet) create user ``admin`` and show its token once."""
    from corral.wiring import open_corral

    corral = open_corral(settings)
    try:
        secret = corral.identity.bootstrap_admin()
    finally:
        corral.close()
    if secret is not None:
        say(f"created user 'admin'; its token (shown once): {secret}")
        say(f"  use it from a shell:  export CORRAL_TOKEN={secret}")
    return secret


def _serve_in_process(
    settings: Settings, host: str, port: int, options: dict[str, Any], say: Say
) -> None:
    from corral.api.app import create_app

    app = create_app(settings)
    bootstrap_admin(settings, say)
    # uvicorn binds through loop.create_server(host, port): its sockets carry IPPROTO_TCP.
    uvicorn.run(app, host=host, port=port, **options)


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket whose accepted connections asyncio sets TCP_NODELAY on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        address = socket.getaddrinfo(
            host or None, port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP, socket.AI_PASSIVE
        )[0][4]
    except socket.gaierror as exc:
        raise InvalidArgument(
            f"cannot listen on {host!r}: {exc.strerror}; give an address of this machine"
        ) from exc
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # Linux: inherited on accept
        sock.bind(address)
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise Unavailable(
            f"cannot listen on {host}:{port}: {exc.strerror}; "
            "stop what uses that port or choose another --port"
        ) from exc
    return sock


def _adopt(family: int, fd: int) -> socket.socket:
    """The listening socket inherited as ``fd``, still known to be TCP."""
    # Explicit IPPROTO_TCP: the protocol is what asyncio checks before setting TCP_NODELAY,
    # and it is not detected from a descriptor everywhere (only Linux has SO_PROTOCOL).
    return socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, fileno=fd)


def _describe(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    ready_fd: int  # read end of a pipe: one byte when serving, EOF when the process is gone
    started_at: float
    serving: bool = False


class _Supervisor:
    """Starts, watches, restarts and stops the worker processes."""

    def __init__(
        self,
        settings: Settings,
        listener: socket.socket,
        count: int,
        options: dict[str, Any],
        say: Say,
        stop_timeout: float,
        on_started: Callable[[], object] = lambda: None,
    ) -> None:
        self._settings = settings
        self._on_started = on_started
        self._listener = listener
        self._count = count
        self._options = options
        self._say = say
        self._stop_timeout = stop_timeout
        self._workers: dict[int, _Worker] = {}
        self._restart_at: dict[int, float] = {}
        self._quick_deaths = [0] * count
        self._all_started = False
        self._signals: list[int] = []
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    def run(self) -> None:
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        # Workers write their Prometheus samples here, so /metrics on any one reports all.
        own_metrics = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
        self._metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
            prefix="corral-metrics-"
        )
        try:
            for index in range(1, self._count + 1):
                self._start(index)
            while not self._signals:
                self._step()
        finally:
            try:
                self._stop_all()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                self._selector.close()
                os.close(self._wake_r)
                os.close(self._wake_w)
                if own_metrics:
                    shutil.rmtree(self._metrics_dir, ignore_errors=True)
        # Leave the way one in-process server does: Ctrl-C is KeyboardInterrupt, SIGTERM kills.
        signal.raise_signal(self._signals[0])

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    def _step(self) -> None:
        timeout = None
        if self._restart_at:
            timeout = max(0.0, min(self._restart_at.values()) - time.monotonic())
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                os.read(self._wake_r, 512)
                continue
            worker: _Worker = key.data
            if os.read(worker.ready_fd, 64):
                self._on_serving(worker)
            else:
                self._on_exit(worker)
        now = time.monotonic()
        for index, when in sorted(self._restart_at.items()):
            if when <= now and not self._signals:
                del self._restart_at[index]
                self._start(index)

    def _start(self, index: int) -> None:
        ready_r, ready_w = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "corral.api.serve", "worker", str(index)],
                stdin=subprocess.PIPE,
                env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": self._metrics_dir},
                pass_fds=(self._listener.fileno(), ready_w),
                # Its own process group: Ctrl-C reaches the supervisor, which stops the workers.
                process_group=0,
            )
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        worker = _Worker(index, process, ready_r, time.monotonic())
        self._workers[index] = worker
        self._selector.register(ready_r, selectors.EVENT_READ, worker)
        spec = {
            "settings": self._settings,
            "options": self._options,
            "index": index,
            "listen_fd": self._listener.fileno(),
            "family": self._listener.family,
            "ready_fd": ready_w,
        }
        assert process.stdin is not None
        try:
            process.stdin.write(pickle.dumps(spec))
            process.stdin.flush()
        except BrokenPipeError:
            pass  # it died at once: its ready pipe reports EOF and _on_exit handles it
        # stdin stays open: the worker stops when it reaches EOF (this process is gone).

    def _on_serving(self, worker: _Worker) -> None:
        worker.serving = True
        if self._all_started:
            self._say(f"worker {worker.index} (pid {worker.process.pid}) is serving")
        elif all(w.serving for w in self._workers.values()):
            self._all_started = True
            pids = ", ".join(str(w.process.pid) for w in self._workers.values())
            self._say(f"{self._count} workers serving (pids {pids})")
            self._on_started()

    def _on_exit(self, worker: _Worker) -> None:
        self._forget(worker)
        returncode = self._reap(worker.process)
        from prometheus_client import multiprocess

        # Its per-process gauges (cache size) leave the totals; its counters stay.
        multiprocess.mark_process_dead(worker.process.pid, self._metrics_dir)  # type: ignore[no-untyped-call]
        if not self._all_started:
            raise Unavailable(
                f"worker {worker.index} could not start: it {_describe(returncode)} "
                "(its error is printed above)"
            )
        now = time.monotonic()
        lived = now - worker.started_at
        if lived >= _HEALTHY_AFTER:
            self._quick_deaths[worker.index - 1] = 0
        delay = min(_FIRST_DELAY * 2 ** self._quick_deaths[worker.index - 1], _MAX_DELAY)
        self._quick_deaths[worker.index - 1] += 1
        self._say(
            f"worker {worker.index} (pid {worker.process.pid}) {_describe(returncode)} "
            f"after {lived:.1f} s; restarting it in {delay:.2f} s"
        )
        self._restart_at[worker.index] = now + delay

    def _forget(self, worker: _Worker) -> None:
        self._selector.unregister(worker.ready_fd)
        os.close(worker.ready_fd)
        del self._workers[worker.index]

    def _reap(self, process: subprocess.Popen[bytes]) -> int:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            return process.wait(timeout=self._stop_timeout)
        except subprocess.TimeoutExpired:  # closed its ready pipe yet lives on: end it
            process.kill()
            return process.wait()

    def _stop_all(self) -> None:
        workers = list(self._workers.values())
        for worker in workers:
            self._forget(worker)
            if worker.process.poll() is None:
                worker.process.terminate()
        deadline = time.monotonic() + self._stop_timeout
        for worker in workers:
            # A second Ctrl-C (or SIGTERM) while stopping means: do not wait.
            while worker.process.poll() is None:
                if time.monotonic() >= deadline or len(self._signals) > 1:
                    worker.process.kill()
                    break
                time.sleep(0.02)
            self._reap(worker.process)


def _worker_main(index: int) -> None:
    """One worker process: the app on the inherited socket until stopped or orphaned."""
    from corral.api.app import create_app

    spec: dict[str, Any] = pickle.load(sys.stdin.buffer)
    ready = os.fdopen(spec["ready_fd"], "wb", buffering=0)  # open until this process ends
    listener = _adopt(spec["family"], spec["listen_fd"])
    try:
        app = create_app(spec["settings"], schedule=index == 0)
    except CorralError as exc:
        sys.stderr.write(f"error: worker {index}: {exc.message}\n")
        sys.exit(1)
    config = uvicorn.Config(app, **spec["options"])
    server = _WorkerServer(config, lambda: ready.write(_READY))
    threading.Thread(target=_stop_when_orphaned, args=(server,), daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listener])
    if not server.started:
        sys.exit(3)


class _WorkerServer(uvicorn.Server):
    """A uvicorn server that reports once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], object]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()


def _stop_when_orphaned(server: uvicorn.Server) -> None:
    sys.stdin.buffer.read()  # returns at EOF: the supervisor is gone
    server.should_exit = True


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _worker_main(int(sys.argv[2]))
