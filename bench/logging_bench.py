"""Serving throughput with prediction logging on versus off, in one run, with wrk.

How to run (from the repository root): ``bash bench/run_logging.sh``.

What it measures: the serving benchmark's model (scikit-learn LogisticRegression on 20
features, skops) behind ``python3 -m corral --home H server`` (1 worker), plain JSON
``POST /api/v1/models/bench-lr/predict``, driven by ``wrk -t1 -c64`` with 1-row and 100-row
bodies. Each pass starts the server with ``CORRAL_LOG_PREDICTIONS=false``, runs both body
sizes, stops it, then the same with logging on (the default: Parquet under the home's
artifact root, flushed every 2 s); ``--passes`` passes (3) of ``--seconds`` (10) per cell, so
that load drifting on the machine hits both modes. Reported per cell: median requests/s
over the passes, each pass's figure, and logging's cost (1 - on / off); and the server's CPU
time per request (user + system of the process, from just before the cell until 2.5 s after
it, so that the log rows of the cell are written within the window; the idle server's
route polling in those 2.5 s is counted in both modes). On a loaded machine the CPU figure
is steadier than requests/s, which swing with whatever else runs. With logging on, the
rows written and dropped (``corral_prediction_log_rows_total`` before the stop, and the
Parquet rows on disk after it) show that the log kept up.

Writes ``logging.jsonl`` and ``logging-report.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, make_model
from serving_bench import CORRAL_JSON_PATH, MODEL, write_bodies
from serving_load import Endpoint, Server, ServerSpec, run_wrk

HERE = Path(__file__).resolve().parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rows", default="1,100")
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args()
    args.rows = [int(r) for r in args.rows.split(",")]
    if args.out is None:
        args.out = HERE / "results" / time.strftime("logging-%Y%m%d-%H%M%S")
    return args


def prepare(work: Path, x: Any) -> Path:
    import skops.io as sio

    import corral

    model_dir = work / "model"
    model_dir.mkdir()
    sio.dump(make_model(), model_dir / "model.skops")
    home = work / "home"
    example = [{f"f{i}": float(v) for i, v in enumerate(x[0])}]
    with corral.Client(home=home) as client:
        version = client.register(MODEL, model_dir, flavor="sklearn", example=example)
        client.set_alias(MODEL, "champion", version.number)
    return home


def spec(home: Path, bodies: dict, logging: bool) -> ServerSpec:
    env = {k: v for k, v in os.environ.items() if k != "CORRAL_SERVER_URL"}
    env |= {"CORRAL_HOME": str(home), "CORRAL_LOG_PREDICTIONS": "true" if logging else "false"}
    server = ServerSpec(
        system="corral",
        label="logging-on" if logging else "logging-off",
        argv=[],
        env=env,
        ready_paths=["/v2/health/ready"],
        endpoints=[Endpoint("json", CORRAL_JSON_PATH, bodies["json"], "predictions")],
    )
    server.argv = [sys.executable, "-m", "corral", "--home", str(home), "server"]
    server.argv += ["--host", "127.0.0.1", "--port", str(server.port)]
    return server


def log_counts(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found = re.findall(r'corral_prediction_log_rows_total\{outcome="(\w+)"\} ([0-9.e+]+)', text)
    return {outcome: float(value) for outcome, value in found}


def cpu_seconds(server: Server) -> float:
    """User + system CPU seconds of the server process so far."""
    import psutil

    assert server.proc is not None
    times = psutil.Process(server.proc.pid).cpu_times()
    return float(times.user + times.system)


def parquet_rows(home: Path) -> int:
    import pyarrow.parquet as pq

    folder = home / "artifacts" / "monitoring" / "predictions"
    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.rglob("*.parquet"))


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    out = (args.out / "logging.jsonl").open("a")

    def write(kind: str, **row: Any) -> None:
        line = json.dumps({"kind": kind, **row})
        print(line, flush=True)
        out.write(line + "\n")

    start = machine()
    write("meta", **start, seconds=args.seconds, passes=args.passes, rows=args.rows)
    work = Path(tempfile.mkdtemp(prefix="corral-logging-"))
    x, bodies = write_bodies(work, args.rows, "inputs")
    home = prepare(work, x)
    model = make_model()
    cells: dict[tuple[int, bool], list[float]] = {}
    cpu: dict[tuple[int, bool], list[float]] = {}
    for number in range(1, args.passes + 1):
        for logging in (False, True):
            server_spec = spec(home, bodies, logging)
            endpoint = server_spec.endpoints[0]
            before = parquet_rows(home) if logging else 0
            with Server(server_spec, logs / f"{server_spec.label}-{number}.log") as server:
                server.wait_ready(120)
                for rows in args.rows:
                    server.check(endpoint, rows, [int(v) for v in model.predict(x[:rows])], 60)
                    run_wrk(  # warm-up, not measured
                        server.url(endpoint), endpoint.bodies[rows], seconds=args.warmup,
                        connections=8, threads=1, log=logs / "wrk.log",
                    )  # fmt: skip
                    cpu_before = cpu_seconds(server)
                    result = run_wrk(
                        server.url(endpoint),
                        endpoint.bodies[rows],
                        seconds=args.seconds,
                        connections=args.concurrency,
                        threads=1,
                        log=logs / "wrk.log",
                    )
                    time.sleep(2.5)  # the recorder flushes every 2 s
                    cpu_ms = (cpu_seconds(server) - cpu_before) * 1000 / max(result["requests"], 1)
                    result["cpu_ms_per_request"] = round(cpu_ms, 4)
                    cells.setdefault((rows, logging), []).append(result["rps"])
                    cpu.setdefault((rows, logging), []).append(cpu_ms)
                    write("cell", passno=number, logging=logging, rows=rows, **result)
                counts = log_counts(server_spec.port) if logging else {}
            if logging:
                write(
                    "log", passno=number, metrics=counts, parquet_rows=parquet_rows(home) - before
                )
    end = machine()
    write("end", loadavg=end["loadavg"])
    report = render(args, cells, cpu, start, end)
    (args.out / "logging-report.md").write_text(report)
    print(report)
    return 0


def render(
    args: argparse.Namespace,
    cells: dict[tuple[int, bool], list[float]],
    cpu: dict[tuple[int, bool], list[float]],
    start: dict[str, Any],
    end: dict[str, Any],
) -> str:
    lines = [
        f"Command: `bash bench/run_logging.sh` (`python3 bench/logging_bench.py --seconds "
        f"{args.seconds} --passes {args.passes} --concurrency {args.concurrency}`); "
        f"1 worker, `wrk -t1 -c{args.concurrency} -d{args.seconds}s`, plain JSON, "
        f"{start['nproc']} CPUs, load average (1/5/15 min) {start['loadavg']} at the start, "
        f"{end['loadavg']} at the end; Python {start['python']}.",
        "",
        "| rows | logging off (req/s) | logging on (req/s) | cost | passes off | passes on "
        "| CPU ms/request off | CPU ms/request on | CPU cost |",
        "|---:|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for rows in args.rows:
        off, on = cells.get((rows, False), []), cells.get((rows, True), [])
        if not off or not on:
            continue
        median_off, median_on = statistics.median(off), statistics.median(on)
        cost = 1 - median_on / median_off
        cpu_off = statistics.median(cpu[(rows, False)])
        cpu_on = statistics.median(cpu[(rows, True)])
        lines.append(
            f"| {rows} | {median_off:,.0f} | {median_on:,.0f} | {cost:+.1%} | "
            f"{', '.join(f'{v:,.0f}' for v in off)} | {', '.join(f'{v:,.0f}' for v in on)} | "
            f"{cpu_off:.3f} | {cpu_on:.3f} | {cpu_on / cpu_off - 1:+.1%} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
