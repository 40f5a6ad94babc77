"""Servers under load for the serving benchmark: start, check, sample memory, drive with wrk.

Standard library + psutil (the driver's environment). ``serving_bench.py`` owns the plan; this
module owns one server's life: ``Server`` starts it in its own process group and always stops
it (``with``), ``RssSampler`` records the RSS of its whole process tree, ``run_wrk`` drives one
cell and parses the line ``serving_wrk.lua`` prints.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import free_port, stop

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "serving_wrk.lua"
MIB = 1 << 20


@dataclass
class Endpoint:
    """One way to ask a server for predictions: a path, a body per row count, an answer check."""

    variant: str  # "json", "oip", "invocations", "predict"
    path: str
    bodies: dict[int, Path]  # rows -> file holding the JSON body
    answer: str  # how to read predictions from the response: see ``predictions_of``


@dataclass
class ServerSpec:
    system: str  # "corral", "mlflow", "bentoml"
    label: str  # for the logs and the report ("corral", "corral-nobatch", ...)
    argv: list[str]
    env: dict[str, str]
    ready_paths: list[str]  # any of them answering 200 means "up"
    endpoints: list[Endpoint]
    cwd: Path | None = None
    batching: bool | None = None  # Corral only
    port: int = field(default_factory=free_port)


def predictions_of(answer: str, payload: Any) -> list[Any]:
    """The predictions in a response body, whatever the server's shape."""
    if answer == "oip":
        return list(payload["outputs"][0]["data"])
    if answer == "list":
        return list(payload)
    return list(payload["predictions"])


def post(port: int, path: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get_status(port: int, path: str, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


class RssSampler:
    """Samples the summed RSS of a process and all its descendants, every ``period`` s."""

    def __init__(self, pid: int, period: float = 0.2) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self._period = period
        self.samples: list[tuple[float, int, int]] = []  # (time, rss bytes, processes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[int, int]:
        import psutil

        total, count = 0, 0
        try:
            procs = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return 0, 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
                count += 1
        return total, count

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, count = self.sample()
            if count:
                self.samples.append((time.perf_counter(), rss, count))
            self._stop.wait(self._period)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def peak(self, since: float = 0.0, until: float = float("inf")) -> tuple[int, int]:
        """(peak RSS bytes, processes at that moment) between two ``perf_counter`` times."""
        inside = [(rss, n) for t, rss, n in self.samples if since <= t <= until]
        return max(inside, default=(0, 0))


class Server:
    """A server started in its own process group; ``with`` stops it, whatever happens."""

    def __init__(self, spec: ServerSpec, log: Path) -> None:
        self.spec = spec
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.sampler: RssSampler | None = None
        self.started_at = 0.0

    def __enter__(self) -> Server:
        self.started_at = time.perf_counter()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.spec.argv,
                env=self.spec.env,
                cwd=self.spec.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.sampler = RssSampler(self.proc.pid).start()
        return self

    def __exit__(self, *exc: object) -> None:
        import psutil

        if self.sampler is not None:
            self.sampler.close()
        if self.proc is None:
            return
        try:
            descendants = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            descendants = []
        stop(self.proc)
        # Workers in process groups of their own outlive a killed parent: end them too.
        alive = [p for p in descendants if p.is_running()]
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(alive, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()

    def wait_ready(self, timeout_s: float) -> float:
        """Seconds from spawn until a readiness path answers 200."""
        assert self.proc is not None
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.spec.label} exited with {self.proc.returncode}; see {self.log_path}"
                )
            for path in self.spec.ready_paths:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if get_status(self.spec.port, path) == 200:
                        return time.perf_counter() - self.started_at
            time.sleep(0.1)
        raise TimeoutError(f"{self.spec.label} not ready within {timeout_s} s; see {self.log_path}")

    def check(self, endpoint: Endpoint, rows: int, expected: list[Any], timeout_s: float) -> None:
        """POST the body once (retrying while the model loads); the answer must be ``expected``."""
        body = endpoint.bodies[rows].read_bytes()
        deadline = time.perf_counter() + timeout_s
        last = ""
        while time.perf_counter() < deadline:
            try:
                status, data = post(self.spec.port, endpoint.path, body)
            except (OSError, http.client.HTTPException) as exc:
                status, data = 0, str(exc).encode()
            if status == 200:
                got = predictions_of(endpoint.answer, json.loads(data))
                if [int(x) for x in got] != [int(x) for x in expected]:
                    raise RuntimeError(
                        f"{self.spec.label} {endpoint.variant} ({rows} rows) answered "
                        f"{got[:5]}..., expected {expected[:5]}..."
                    )
                return
            last = f"{status}: {data[:300]!r}"
            if status in (400, 404, 405, 415, 422):
                break  # a wrong request, not a model still loading
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.spec.label} {endpoint.variant} ({rows} rows) failed: {last}; "
            f"see {self.log_path}"
        )

    def url(self, endpoint: Endpoint) -> str:
        return f"http://127.0.0.1:{self.spec.port}{endpoint.path}"


def run_wrk(
    url: str,
    body: Path,
    *,
    seconds: int,
    connections: int,
    threads: int,
    log: Path,
    timeout_s: int = 5,
) -> dict[str, Any]:
    """One wrk run: requests/s, latency percentiles (ms) and error counts."""
    threads = max(1, min(threads, connections))
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout_s}s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    env = dict(os.environ, WRK_BODY_FILE=str(body))
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    with log.open("a") as fh:
        fh.write(f"$ WRK_BODY_FILE={body} {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("SERVING_RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-500:]}")
    raw = json.loads(lines[-1].split(" ", 1)[1])
    errors = {k.removeprefix("errors_"): v for k, v in raw.items() if k.startswith("errors_")}
    duration_s = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "duration_s": round(duration_s, 3),
        "rps": round(raw["requests"] / duration_s, 1) if duration_s else 0.0,
        "p50_ms": round(raw["p50_us"] / 1000, 4),
        "p90_ms": round(raw["p90_us"] / 1000, 4),
        "p99_ms": round(raw["p99_us"] / 1000, 4),
        "max_ms": round(raw["max_us"] / 1000, 3),
        "mean_ms": round(raw["mean_us"] / 1000, 4),
        "errors": errors,
        "errors_total": sum(errors.values()),
        "wrk_threads": threads,
    }
