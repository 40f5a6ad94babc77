"""Serving throughput with the security features all on versus all off, and the token check.

How to run (from the repository root): ``bash bench/run_security.sh``.

What it measures:

- **Serving**: the serving benchmark's model (scikit-learn LogisticRegression on 20 features,
  skops) behind ``python3 -m corral --home H server`` (1 worker), plain JSON
  ``POST /api/v1/models/bench-lr/predict`` with a 1-row body, driven by ``wrk -t1 -c64``.
  "on": ``CORRAL_ANONYMOUS_ROLE=none``, every request carries ``Authorization: Bearer`` with
  a consumer's gold-tier token whose ``rate_limit`` is ``1000000/second`` (so the limiter
  counts every request but never refuses, and tier admission, 64 slots, is checked on every
  request), and ``CORRAL_REQUIRE_SIGNATURES=true`` (the version is signed and verified when
  loaded). "off": ``CORRAL_ANONYMOUS_ROLE=admin``, no token, no limit, no admission (a
  million slots), ``CORRAL_REQUIRE_SIGNATURES=false``. A run whose replies are not all 2xx
  stops with an error rather than report the speed of refusals. The prediction log is off in
  both (it has its own benchmark). Each pass starts the server in one mode, checks an
  answer, warms up, runs ``--seconds`` (10), stops it, then the other mode; ``--passes`` (3)
  passes, so that load drifting on the machine hits both modes. Reported: median requests/s,
  each pass's figure, the cost (1 - on / off), and the server's CPU time per request (user +
  system of the process over the cell), which is steadier than requests/s on a shared machine.
- **Token check, in process**: ``IdentityService.authenticate`` on a cached token, and the
  whole principal resolution of the front door (``Authenticator.resolve`` from the raw
  ``Authorization`` header, then ``acting_as``), in µs per call: ``timeit`` of
  ``--calls`` calls, the median of ``--repeats`` repeats.

Writes ``security.jsonl`` and ``security-report.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, make_model
from serving_bench import CORRAL_JSON_PATH, MODEL, write_bodies
from serving_load import WRK_SCRIPT, Endpoint, Server, ServerSpec

HERE = Path(__file__).resolve().parent
RATE_LIMIT = "1000000/second"
MODES = ("off", "on")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--calls", type=int, default=20000, help="calls per timeit repeat")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    if args.out is None:
        args.out = HERE / "results" / time.strftime("security-%Y%m%d-%H%M%S")
    return args


def prepare(work: Path, x: Any) -> tuple[Path, str]:
    """A home with the model registered (signed) and aliased, and a consumer's token."""
    import skops.io as sio

    import corral
    from corral.access import Role
    from corral.config import Settings
    from corral.wiring import open_corral

    model_dir = work / "model"
    model_dir.mkdir()
    sio.dump(make_model(), model_dir / "model.skops")
    home = work / "home"
    example = [{f"f{i}": float(v) for i, v in enumerate(x[0])}]
    with corral.Client(home=home) as client:
        version = client.register(MODEL, model_dir, flavor="sklearn", example=example)
        client.set_alias(MODEL, "champion", version.number)
    wired = open_corral(Settings(home=home))
    try:
        wired.identity.bootstrap_admin()
        wired.identity.create_user("bench")
        wired.identity.grant(Role.CONSUMER, user="bench", model=MODEL)
        _, secret = wired.identity.create_token(
            "bench", name="bench", rate_limit=RATE_LIMIT, tier="gold"
        )
    finally:
        wired.close()
    return home, secret


def spec(home: Path, body: Path, mode: str) -> ServerSpec:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env |= {
        "CORRAL_HOME": str(home),
        "CORRAL_LOG_PREDICTIONS": "false",
        "CORRAL_ANONYMOUS_ROLE": "none" if mode == "on" else "admin",
        "CORRAL_REQUIRE_SIGNATURES": "true" if mode == "on" else "false",
        # "on": the gold token's tier share is all 64 slots, as many as wrk's connections, so
        # admission is checked on every request and refuses none. "off": no admission at all
        # (an anonymous caller is bronze: half the slots, and wrk would mostly measure 429s).
        "CORRAL_MAX_INFLIGHT_PREDICTIONS": "64" if mode == "on" else "1000000",
    }
    server = ServerSpec(
        system="corral",
        label=f"security-{mode}",
        argv=[],
        env=env,
        ready_paths=["/v2/health/ready"],
        endpoints=[Endpoint("json", CORRAL_JSON_PATH, {1: body}, "predictions")],
    )
    server.argv = [sys.executable, "-m", "corral", "--home", str(home), "server"]
    server.argv += ["--host", "127.0.0.1", "--port", str(server.port), "--workers", "1"]
    return server


def headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def check(port: int, body: bytes, token: str | None, expected: list[int], timeout_s: float) -> None:
    """POST once (retrying while the model loads); the answer must be ``expected``."""
    deadline = time.perf_counter() + timeout_s
    last = ""
    while time.perf_counter() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(
                "POST",
                CORRAL_JSON_PATH,
                body=body,
                headers={"Content-Type": "application/json", **headers(token)},
            )
            reply = conn.getresponse()
            status, data = reply.status, reply.read()
        except (OSError, http.client.HTTPException) as exc:
            status, data = 0, str(exc).encode()
        finally:
            conn.close()
        if status == 200:
            got = [int(v) for v in json.loads(data)["predictions"]]
            if got != expected:
                raise RuntimeError(f"answered {got}, expected {expected}")
            return
        last = f"{status}: {data[:300]!r}"
        if 400 <= status < 500 and status != 404:
            break  # refused: a wrong token or request, not a model still loading
        time.sleep(0.2)
    raise RuntimeError(f"the check request failed: {last}")


def wrk(
    url: str, body: Path, token: str | None, *, seconds: int, connections: int, log: Path
) -> dict[str, Any]:
    """One wrk run with serving_wrk.lua (plus the Authorization header when ``token``)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout=5s", "--latency"]
    for name, value in headers(token).items():
        argv += ["-H", f"{name}: {value}"]
    argv += ["-s", str(WRK_SCRIPT), url]
    env = dict(os.environ, WRK_BODY_FILE=str(body))
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    with log.open("a") as fh:  # the token is a secret of a throwaway home: still, not logged
        shown = [
            a if not a.startswith("Authorization") else "Authorization: Bearer …" for a in argv
        ]
        fh.write(f"$ {' '.join(shown)}\n{done.stdout}{done.stderr}\n")
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("SERVING_RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-500:]}")
    raw = json.loads(lines[-1].split(" ", 1)[1])
    duration_s = raw["duration_us"] / 1e6
    errors = {k.removeprefix("errors_"): v for k, v in raw.items() if k.startswith("errors_")}
    if sum(errors.values()) > raw["requests"] // 1000:
        raise RuntimeError(f"wrk saw errors (status: non-2xx replies), not a throughput: {errors}")
    return {
        "requests": raw["requests"],
        "duration_s": round(duration_s, 3),
        "rps": round(raw["requests"] / duration_s, 1) if duration_s else 0.0,
        "p50_ms": round(raw["p50_us"] / 1000, 4),
        "p99_ms": round(raw["p99_us"] / 1000, 4),
        "errors": errors,
        "errors_total": sum(errors.values()),
    }


def cpu_seconds(server: Server) -> float:
    import psutil

    assert server.proc is not None
    times = psutil.Process(server.proc.pid).cpu_times()
    return float(times.user + times.system)


def microbench(home: Path, secret: str, calls: int, repeats: int) -> dict[str, float]:
    """µs per call (median of ``repeats``) of the token check and the front door's resolution."""
    from corral.access import acting_as
    from corral.api.auth import Authenticator
    from corral.config import Settings
    from corral.wiring import open_corral

    wired = open_corral(Settings(home=home, anonymous_role="none"))
    try:
        identity = wired.identity
        identity.authenticate(secret)  # the first call reads the store and caches
        authenticator = Authenticator(lambda: identity, "none")
        header = f"Bearer {secret}".encode()
        path = CORRAL_JSON_PATH

        def front_door() -> None:
            resolved = authenticator.resolve(path, header, None)
            with acting_as(resolved.principal):
                pass

        open_door = Authenticator(lambda: identity, "admin")
        cases = {
            "authenticate (cached token)": lambda: identity.authenticate(secret),
            "front door: Bearer -> principal -> acting_as": front_door,
            "front door, anonymous (no header), for reference": lambda: open_door.resolve(
                path, None, None
            ),
        }
        result = {}
        for name, call in cases.items():
            runs = timeit.repeat(call, number=calls, repeat=repeats)
            result[name] = round(statistics.median(runs) / calls * 1e6, 3)
        return result
    finally:
        wired.close()


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    out = (args.out / "security.jsonl").open("a")

    def write(kind: str, **row: Any) -> None:
        line = json.dumps({"kind": kind, **row})
        print(line, flush=True)
        out.write(line + "\n")

    start = machine()
    write("meta", **start, seconds=args.seconds, passes=args.passes, rate_limit=RATE_LIMIT)
    work = Path(tempfile.mkdtemp(prefix="corral-security-"))
    x, bodies = write_bodies(work, [1], "inputs")
    body = bodies["json"][1]
    home, secret = prepare(work, x)
    expected = [int(v) for v in make_model().predict(x[:1])]
    micro = microbench(home, secret, args.calls, args.repeats)
    write("micro", us_per_call=micro, calls=args.calls, repeats=args.repeats)
    rps: dict[str, list[float]] = {m: [] for m in MODES}
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    for number in range(1, args.passes + 1):
        for mode in MODES:
            token = secret if mode == "on" else None
            server_spec = spec(home, body, mode)
            url = f"http://127.0.0.1:{server_spec.port}{CORRAL_JSON_PATH}"
            with Server(server_spec, logs / f"{server_spec.label}-{number}.log") as server:
                server.wait_ready(120)
                check(server_spec.port, body.read_bytes(), token, expected, 60)
                if mode == "on":  # the same request without the token must be refused
                    refused = _status_without_token(server_spec.port, body.read_bytes())
                    if refused != 401:
                        raise RuntimeError(f"'on' answered {refused} without a token, not 401")
                wrk(url, body, token, seconds=args.warmup, connections=8, log=logs / "wrk.log")
                cpu_before = cpu_seconds(server)
                result = wrk(
                    url,
                    body,
                    token,
                    seconds=args.seconds,
                    connections=args.concurrency,
                    log=logs / "wrk.log",
                )
                cpu_ms = (cpu_seconds(server) - cpu_before) * 1000 / max(result["requests"], 1)
                result["cpu_ms_per_request"] = round(cpu_ms, 4)
                rps[mode].append(result["rps"])
                cpu[mode].append(cpu_ms)
                write("cell", passno=number, mode=mode, **result)
    end = machine()
    write("end", loadavg=end["loadavg"])
    report = render(args, rps, cpu, micro, start, end)
    (args.out / "security-report.md").write_text(report)
    print(report)
    return 0


def _status_without_token(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST", CORRAL_JSON_PATH, body=body, headers={"Content-Type": "application/json"}
        )
        reply = conn.getresponse()
        reply.read()
        return reply.status
    finally:
        conn.close()


def render(
    args: argparse.Namespace,
    rps: dict[str, list[float]],
    cpu: dict[str, list[float]],
    micro: dict[str, float],
    start: dict[str, Any],
    end: dict[str, Any],
) -> str:
    off, on = statistics.median(rps["off"]), statistics.median(rps["on"])
    cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    lines = [
        f"Command: `bash bench/run_security.sh` (`python3 bench/security_bench.py --seconds "
        f"{args.seconds} --passes {args.passes} --concurrency {args.concurrency}`); "
        f"1 worker, `wrk -t1 -c{args.concurrency} -d{args.seconds}s`, plain JSON, 1 row, "
        f"{start['nproc']} CPUs, load average (1/5/15 min) {start['loadavg']} at the start, "
        f"{end['loadavg']} at the end; Python {start['python']}.",
        "",
        "| security | req/s (median) | passes | CPU ms/request |",
        "|---|---:|---|---:|",
        f"| off | {off:,.0f} | {', '.join(f'{v:,.0f}' for v in rps['off'])} | {cpu_off:.3f} |",
        f"| on | {on:,.0f} | {', '.join(f'{v:,.0f}' for v in rps['on'])} | {cpu_on:.3f} |",
        "",
        f"Throughput cost (1 - on/off): {1 - on / off:+.1%}; CPU per request: "
        f"{cpu_on / cpu_off - 1:+.1%}.",
        "",
        f"In process, µs per call (median of {args.repeats} × {args.calls:,} calls):",
        "",
        "| call | µs |",
        "|---|---:|",
        *(f"| {name} | {value:.2f} |" for name, value in micro.items()),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
