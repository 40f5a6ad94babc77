"""Timing and statistics helpers shared by the benchmark scripts.

Standard library only: it is imported both by Corral's environment and inside the peers'
virtualenvs (``sys.path`` gets ``bench/`` prepended by the scripts).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# The model every registry benchmark stores: the same for Corral and the peers.
N_FEATURES = 20


def make_model(seed: int = 0) -> Any:
    """A small fitted scikit-learn LogisticRegression on 20 features."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(500, N_FEATURES))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return LogisticRegression(max_iter=200).fit(x, y)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation, like numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(samples_s: list[float]) -> dict[str, Any]:
    """Median, p95, min, max (milliseconds) and count of timings taken in seconds."""
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 3) if ms else math.nan,
        "p95_ms": round(percentile(ms, 95), 3),
        "min_ms": round(min(ms), 3) if ms else math.nan,
        "max_ms": round(max(ms), 3) if ms else math.nan,
    }


class Recorder:
    """Collects per-operation timings and writes one JSON line per operation."""

    def __init__(self, system: str, mode: str, out: Path | None, **meta: Any) -> None:
        self.system, self.mode, self.out, self.meta = system, mode, out, meta
        self.samples: dict[str, list[float]] = {}
        self.extra: dict[str, dict[str, Any]] = {}

    @contextlib.contextmanager
    def time(self, op: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.samples.setdefault(op, []).append(time.perf_counter() - start)

    def add(self, op: str, seconds: float) -> None:
        self.samples.setdefault(op, []).append(seconds)

    def note(self, op: str, **info: Any) -> None:
        self.extra.setdefault(op, {}).update(info)

    def emit(self, op: str) -> dict[str, Any]:
        row = {
            "system": self.system,
            "mode": self.mode,
            "op": op,
            **summarize(self.samples.get(op, [])),
            **self.extra.get(op, {}),
        }
        line = json.dumps(row)
        print(line, flush=True)
        if self.out is not None:
            with self.out.open("a") as fh:
                fh.write(line + "\n")
        return row

    def emit_all(self) -> None:
        for op in self.samples:
            self.emit(op)

    def emit_meta(self) -> None:
        row = {"system": self.system, "mode": self.mode, "op": "_meta", **machine(), **self.meta}
        print(json.dumps(row), flush=True)
        if self.out is not None:
            with self.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "nproc": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(
    url: str, timeout_s: float = 120.0, proc: subprocess.Popen[Any] | None = None
) -> float:
    """Poll ``url`` until it answers 200; return the seconds waited."""
    start = time.perf_counter()
    deadline = start + timeout_s
    while time.perf_counter() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def stop(proc: subprocess.Popen[Any], timeout_s: float = 15.0) -> None:
    """Terminate a server started in its own process group, then kill it if it lingers."""
    if proc.poll() is not None:
        return
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout_s)


def time_cold(
    argv: list[str], env: dict[str, str], runs: int, warmup: int = 1
) -> tuple[list[float], list[dict[str, Any]]]:
    """Wall time of a fresh process, ``runs`` times after ``warmup`` discarded runs.

    The child prints one JSON line on stdout (its own breakdown); those are returned too.
    """
    walls: list[float] = []
    inner: list[dict[str, Any]] = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"cold run failed ({done.returncode}): {done.stderr[-2000:]}")
        if i >= warmup:
            walls.append(wall)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
            if lines:
                inner.append(json.loads(lines[-1]))
    return walls, inner


def bounded(seconds: float) -> Callable[[], bool]:
    """A predicate that turns False once ``seconds`` have passed: a time bound for loops."""
    deadline = time.perf_counter() + seconds
    return lambda: time.perf_counter() < deadline


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


if __name__ == "__main__":  # pragma: no cover - smoke check
    print(json.dumps(machine()), file=sys.stderr)


def start_corral_server(home: Path) -> tuple[subprocess.Popen, str]:
    """`corral server` on a free loopback port for ``home``; its log beside the home."""
    port = free_port()
    env = dict(os.environ, CORRAL_HOME=str(home))
    env.pop("CORRAL_SERVER_URL", None)
    log = (home.parent / "corral-server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from corral.cli.main import main; main()",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def scenario_b_names(m: int) -> tuple[str, dict[str, str]]:
    """Scenario (b)'s model m: its name and model tags, the same for every peer."""
    return f"b-model-{m:03d}", {"team": f"team-{m % 5}"}


def scenario_b_tags(m: int, k: int) -> dict[str, str]:
    """Scenario (b)'s tags of version k of model m, the same for every peer."""
    return {"team": f"team-{m % 5}", "batch": f"batch-{k}", "seed": str(m * 1000 + k)}
